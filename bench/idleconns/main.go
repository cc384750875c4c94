// Command idleconns opens N idle PostgreSQL connections, holds them, and
// closes them: bench/pgbench.sh uses it to measure a proxy's memory per
// idle client connection.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func main() {
	dsn := flag.String("dsn", "", "connection string")
	n := flag.Int("n", 200, "connections")
	hold := flag.Duration("hold", 3*time.Second, "how long to hold them")
	flag.Parse()
	ctx := context.Background()
	conns := make([]*pgconn.PgConn, 0, *n)
	for i := 0; i < *n; i++ {
		c, err := pgconn.Connect(ctx, *dsn)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: connection %d: %v\n", i, err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Printf("holding %d connections for %s\n", len(conns), *hold)
	time.Sleep(*hold)
	for _, c := range conns {
		c.Close(ctx)
	}
}
