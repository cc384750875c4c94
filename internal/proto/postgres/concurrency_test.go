package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestManyConcurrentSessions opens many sessions at once through
// database/sql, as pgx's TestConnConcurrency does. Under that load pgconn's
// background reader could be mid-read when the gateway took the target
// connection over, and stole a response: the client hung.
func TestManyConcurrentSessions(t *testing.T) {
	e := sharedEnv(t)
	db, err := sql.Open("pgx", e.dsn(e.alice, "appdb", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := fmt.Sprintf("conc_%d", time.Now().UnixNano())
	if _, err := db.Exec("CREATE TABLE " + table + " (id int primary key, s text)"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 1; i <= 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" VALUES ($1)", i); err != nil {
				errs <- fmt.Errorf("insert %d: %w", i, err)
				return
			}
			if _, err := db.ExecContext(ctx, "UPDATE "+table+" SET s = $1 WHERE id = $2", fmt.Sprint(i), i); err != nil {
				errs <- fmt.Errorf("update %d: %w", i, err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(8 * time.Second):
		direct := e.connect(t, e.direct())
		rows, _ := direct.Query(context.Background(), "SELECT pid, state, coalesce(wait_event_type,''), coalesce(wait_event,''), left(query, 60) FROM pg_stat_activity WHERE datname = current_database()")
		for rows.Next() {
			v, _ := rows.Values()
			t.Logf("target backend: %v", v)
		}
		rows.Close()
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table+" WHERE s IS NOT NULL").Scan(&n); err != nil || n != 50 {
		t.Errorf("rows = %d, %v; want 50", n, err)
	}
}
