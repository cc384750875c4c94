package store

import (
	"context"
	"testing"
)

func TestSQLitePragmas(t *testing.T) {
	st, err := Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	for pragma, want := range map[string]string{"page_size": "65536", "journal_mode": "wal", "synchronous": "1"} {
		var got string
		if err := s.queryRow(context.Background(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
		}
	}
}
