package audit

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestAppendJSONIsValidAndEscaped(t *testing.T) {
	tests := []struct{ name, command string }{
		{"plain", "SELECT 1"},
		{"quotes and newlines", "SELECT '\"x\"'\n\t-- \\ comment\r"},
		{"control bytes", "a\x00b\x1fc\x7f"},
		{"invalid utf-8", "SELECT '\xff\xfe'"},
		{"unicode", "SELECT 'héllo ✓'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Event{Seq: 7, Time: time.Date(2026, 11, 22, 1, 2, 3, 456789, time.UTC), Type: TypeCommand, Command: tt.command, Rows: 3, Duration: 1500 * time.Microsecond}
			var m map[string]any
			b := e.AppendJSON(nil)
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("AppendJSON produced invalid JSON %q: %v", b, err)
			}
			want := tt.command
			if tt.name == "invalid utf-8" {
				want = "SELECT '\ufffd\ufffd'"
			}
			if m["command"] != want || m["seq"] != float64(7) || m["rows"] != float64(3) || m["duration_us"] != float64(1500) ||
				m["time"] != "2026-11-22T01:02:03.000456789Z" || m["v"] != float64(Version) {
				t.Errorf("decoded %v", m)
			}
		})
	}
}

func TestAppendJSONDoesNotAllocate(t *testing.T) {
	e := Event{Type: TypeCommand, Identity: "alice", Session: "s", Connection: "db", Command: "SELECT abalance FROM pgbench_accounts WHERE aid = 1", Time: time.Now()}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON allocates %.0f times per event", n)
	}
}

func TestLogSequencesAcrossRestartsAndConcurrency(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, "node1", quiet)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				l.Append(Event{Type: TypeCommand, Command: "x"})
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, "node1", quiet)
	if err != nil {
		t.Fatal(err)
	}
	l.Append(Event{Type: TypeSessionClose})
	l.Close()
	f, _ := os.Open(l.Path())
	defer f.Close()
	events, err := ReadAll(f)
	if err != nil || len(events) != 801 {
		t.Fatalf("read %d events, %v; want 801", len(events), err)
	}
	for i, e := range events {
		if e["seq"] != float64(i+1) || e["node"] != "node1" {
			t.Fatalf("event %d has seq %v node %v", i, e["seq"], e["node"])
		}
	}
	if st, _ := os.Stat(l.Path()); st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", st.Mode().Perm())
	}
}
