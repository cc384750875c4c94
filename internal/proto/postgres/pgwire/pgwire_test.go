package pgwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func startupPacket(code uint32, params ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint32(b, code)
	for _, p := range params {
		b = append(append(b, p...), 0)
	}
	if code>>16 == 3 {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func TestReadStartup(t *testing.T) {
	tests := []struct {
		name    string
		packet  []byte
		want    Startup
		wantErr string
	}{
		{"startup", startupPacket(ProtocolVersion30, "user", "alice", "database", "orders-db"), Startup{Kind: StartupMessage, Params: []Param{{"user", "alice"}, {"database", "orders-db"}}}, ""},
		{"ssl", startupPacket(SSLRequestCode), Startup{Kind: SSLRequest}, ""},
		{"gssenc", startupPacket(GSSENCRequestCode), Startup{Kind: GSSENCRequest}, ""},
		{"cancel", AppendCancelRequest(nil, 7, 9), Startup{Kind: CancelRequest, ProcessID: 7, SecretKey: 9}, ""},
		{"protocol 2", startupPacket(2 << 16), Startup{}, "unsupported frontend protocol 2.0"},
		{"too long", binary.BigEndian.AppendUint32(nil, 20000), Startup{}, "invalid startup packet length 20000"},
		{"too short", binary.BigEndian.AppendUint32(nil, 4), Startup{}, "invalid startup packet length 4"},
		{"no terminator", append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 13), ProtocolVersion30), 'u', 's', 'e', 'r', 0), Startup{}, "missing value"},
		{"truncated", startupPacket(ProtocolVersion30, "user", "a")[:10], Startup{}, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadStartup(bytes.NewReader(tt.packet))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadStartup = %+v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Kind != tt.want.Kind || got.ProcessID != tt.want.ProcessID || got.SecretKey != tt.want.SecretKey || len(got.Params) != len(tt.want.Params) {
				t.Fatalf("ReadStartup = %+v, %v; want %+v", got, err, tt.want)
			}
			for i, p := range tt.want.Params {
				if got.Params[i] != p {
					t.Errorf("param %d = %+v, want %+v", i, got.Params[i], p)
				}
			}
		})
	}
}

func frame(typ byte, body string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

func TestFields(t *testing.T) {
	if q, err := QueryText(frame('Q', "SELECT 1\x00")); err != nil || string(q) != "SELECT 1" {
		t.Errorf("QueryText = %q, %v", q, err)
	}
	if _, err := QueryText(frame('Q', "SELECT 1")); err == nil {
		t.Error("QueryText accepted a missing terminator")
	}
	name, q, err := ParseFields(frame('P', "s1\x00SELECT $1\x00\x00\x00"))
	if err != nil || string(name) != "s1" || string(q) != "SELECT $1" {
		t.Errorf("ParseFields = %q %q %v", name, q, err)
	}
	portal, stmt, err := BindNames(frame('B', "p\x00s1\x00\x00\x00"))
	if err != nil || string(portal) != "p" || string(stmt) != "s1" {
		t.Errorf("BindNames = %q %q %v", portal, stmt, err)
	}
	// Bind: portal, statement, two format codes, two values (one NULL),
	// one result format code.
	bind := frame('B', "p\x00s1\x00\x00\x02\x00\x00\x00\x01\x00\x02\x00\x00\x00\x02hi\xff\xff\xff\xff\x00\x01\x00\x00")
	if v, ok := BindValues(bind); !ok || string(v) != "\x00\x02\x00\x00\x00\x02hi\xff\xff\xff\xff" {
		t.Errorf("BindValues = %q, %v", v, ok)
	}
	if _, ok := BindValues(bind[:len(bind)-8]); ok {
		t.Error("BindValues accepted a truncated value")
	}
	rd := frame('T', "\x00\x02id\x00"+strings.Repeat("\x00", 18)+"name\x00"+strings.Repeat("\x00", 18))
	if names, ok := AppendColumnNames(nil, rd); !ok || string(names) != "\x00\x02\x00\x00\x00\x02id\x00\x00\x00\x04name" {
		t.Errorf("AppendColumnNames = %q, %v", names, ok)
	}
	if _, ok := AppendColumnNames(nil, rd[:len(rd)-1]); ok {
		t.Error("AppendColumnNames accepted a truncated field")
	}
	for tag, want := range map[string]int64{"SELECT 5": 5, "INSERT 0 3": 3, "UPDATE 12": 12, "BEGIN": -1, "COPY 100": 100} {
		if got := CommandRows(frame('C', tag+"\x00")); got != want {
			t.Errorf("CommandRows(%q) = %d, want %d", tag, got, want)
		}
	}
	code, msg := ErrorFields(AppendError(nil, SeverityError, "42501", "blocked", "", "a hint"))
	if string(code) != "42501" || string(msg) != "blocked" {
		t.Errorf("ErrorFields = %q %q", code, msg)
	}
	if ReadyStatus(AppendReadyForQuery(nil, 'T')) != 'T' {
		t.Error("ReadyStatus")
	}
	if kind, name, err := CloseTarget(frame('C', "Sname\x00")); err != nil || kind != 'S' || string(name) != "name" {
		t.Errorf("CloseTarget = %c %q %v", kind, name, err)
	}
}

func TestAppendErrorDropsNUL(t *testing.T) {
	b := AppendError(nil, SeverityFatal, "28P01", "bad\x00token", "", "")
	typ, total, _ := Header(b)
	if typ != 'E' || total != len(b) {
		t.Fatalf("frame header %c %d for %d bytes", typ, total, len(b))
	}
	if _, msg := ErrorFields(b); string(msg) != "badtoken" {
		t.Errorf("message = %q", msg)
	}
}

func holdQ(typ byte) bool { return typ == 'Q' || typ == 'C' }

// stream builds a message stream mixing held and streamed frames, one of
// them larger than the chunker's buffer.
func stream() ([]byte, int) {
	var b []byte
	b = append(b, frame('Q', "SELECT 1\x00")...)
	b = append(b, frame('D', strings.Repeat("x", 5000))...)
	b = append(b, frame('C', "SELECT 1\x00")...)
	b = append(b, frame('Q', strings.Repeat("y", 3000)+"\x00")...)
	b = append(b, frame('Z', "I")...)
	return b, 5
}

func TestChunkerForwardsEverythingInOrder(t *testing.T) {
	input, frames := stream()
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			c := NewChunker(wrap(bytes.NewReader(input)), 1024, 1<<20, holdQ)
			var out []byte
			var seen []byte
			for {
				run, err := c.Next(func(f []byte, whole bool) error {
					seen = append(seen, f[0])
					if holdQ(f[0]) && !whole {
						t.Fatalf("held frame %c shown in pieces", f[0])
					}
					if whole {
						if _, total, _ := Header(f); total != len(f) {
							t.Fatalf("whole frame %c has %d bytes, header says %d", f[0], len(f), total)
						}
					}
					return nil
				})
				out = append(out, run...)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(out, input) {
				t.Fatalf("forwarded %d bytes, want the %d input bytes unchanged", len(out), len(input))
			}
			if string(seen) != "QDCQZ" || len(seen) != frames {
				t.Errorf("visited %q, want QDCQZ", seen)
			}
		})
	}
}

func TestChunkerLimits(t *testing.T) {
	big := frame('Q', strings.Repeat("z", 4096)+"\x00")
	c := NewChunker(bytes.NewReader(big), 512, 1024, holdQ)
	_, err := c.Next(func([]byte, bool) error { return nil })
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 1024 {
		t.Errorf("oversized held frame: %v; want *TooLargeError", err)
	}
	bad := []byte{'Q', 0, 0, 0, 2}
	c = NewChunker(bytes.NewReader(bad), 512, 1024, holdQ)
	if _, err := c.Next(func([]byte, bool) error { return nil }); err == nil || !strings.Contains(err.Error(), "invalid message length") {
		t.Errorf("length 2: %v", err)
	}
	// A streamed frame may be larger than the limit.
	huge := frame('d', strings.Repeat("c", 10000))
	c = NewChunker(bytes.NewReader(huge), 512, 1024, holdQ)
	total := 0
	for {
		run, err := c.Next(func([]byte, bool) error { return nil })
		total += len(run)
		if err != nil {
			break
		}
	}
	if total != len(huge) {
		t.Errorf("streamed %d of %d bytes", total, len(huge))
	}
}

func TestChunkerDoesNotAllocate(t *testing.T) {
	msg := append(frame('Q', "SELECT abalance FROM pgbench_accounts WHERE aid = 1\x00"), frame('D', "row")...)
	r := &repeatReader{b: msg}
	c := NewChunker(r, 16<<10, 1<<20, holdQ)
	visit := func([]byte, bool) error { return nil }
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.Next(visit); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Chunker.Next allocates %.1f times per call; want 0", allocs)
	}
}

type repeatReader struct{ b []byte }

func (r *repeatReader) Read(p []byte) (int, error) { return copy(p, r.b), nil }

func FuzzReadStartup(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/startup-*")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Add(startupPacket(ProtocolVersion30, "user", "u", "database", "d"))
	f.Add(startupPacket(SSLRequestCode))
	f.Add(AppendCancelRequest(nil, 1, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadStartup(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, p := range s.Params {
			if strings.IndexByte(p.Name, 0) >= 0 || strings.IndexByte(p.Value, 0) >= 0 {
				t.Fatalf("parameter with NUL: %+v", p)
			}
		}
	})
}

// FuzzChunker feeds arbitrary bytes in random pieces: the chunker must never
// panic, must forward a prefix of its input unchanged, and must show held
// frames whole.
func FuzzChunker(f *testing.F) {
	input, _ := stream()
	f.Add(input, int64(1))
	seeds, _ := filepath.Glob("testdata/messages-*")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b, int64(2))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed int64) {
		if len(in) > 1<<14 {
			return // larger inputs add nothing but make minimising slow
		}
		rng := rand.New(rand.NewSource(seed))
		r := &randomReader{b: in, rng: rng}
		c := NewChunker(r, 64, 4096, holdQ)
		var out []byte
		for i := 0; i < len(in)+10; i++ {
			run, err := c.Next(func(fr []byte, whole bool) error {
				if holdQ(fr[0]) && !whole {
					t.Fatalf("held frame shown in pieces")
				}
				if whole {
					if _, total, _ := Header(fr); total != len(fr) {
						t.Fatalf("frame length mismatch")
					}
				}
				return nil
			})
			out = append(out, run...)
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("forwarded bytes are not a prefix of the input")
		}
	})
}

type randomReader struct {
	b   []byte
	rng *rand.Rand
}

func (r *randomReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.b), 1+r.rng.Intn(97))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

func FuzzFields(f *testing.F) {
	f.Add(frame('Q', "SELECT 1\x00"))
	f.Add(frame('P', "s\x00SELECT 1\x00\x00\x00"))
	f.Add(AppendError(nil, SeverityError, "XX000", "m", "d", "h"))
	f.Fuzz(func(t *testing.T, fr []byte) {
		if len(fr) < HeaderLen {
			return
		}
		QueryText(fr)
		ParseFields(fr)
		BindNames(fr)
		BindValues(fr)
		AppendColumnNames(nil, fr)
		ExecutePortal(fr)
		CloseTarget(fr)
		PasswordText(fr)
		CommandRows(fr)
		ErrorFields(fr)
		ReadyStatus(fr)
	})
}
