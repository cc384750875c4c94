package compress

import (
	"bytes"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestRoundTripAndDamage(t *testing.T) {
	src := []byte(strings.Repeat(`{"v":1,"type":"command","command":"SELECT 1"}`+"\n", 300))
	blob := Encode(nil, src)
	if len(blob) > len(src)/4 {
		t.Errorf("%d bytes packed into %d", len(src), len(blob))
	}
	if got, err := Decode(blob, len(src)); err != nil || !bytes.Equal(got, src) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := Decode(blob, len(src)-1); err == nil {
		t.Error("a blob larger than max decoded")
	}
	reuse := make([]byte, 0, 1<<16)
	if got := Encode(reuse, src); &got[0] != &reuse[:1][0] {
		t.Error("Encode did not reuse dst's room")
	}
	enc, _ := zstd.NewWriter(nil)
	if got, err := Decode(enc.EncodeAll(src, nil), len(src)); err != nil || !bytes.Equal(got, src) {
		t.Errorf("a zstd blob written before: %v", err)
	}
	for name, bad := range map[string][]byte{
		"flipped bit": func() []byte { b := bytes.Clone(blob); b[len(b)/2] ^= 1; return b }(),
		"flipped crc": func() []byte { b := bytes.Clone(blob); b[4] ^= 1; return b }(),
		"cut short":   blob[:len(blob)-3],
		"prefix only": blob[:5],
		"plain text":  src,
		"empty":       nil,
	} {
		if _, err := Decode(bad, 1<<20); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecode: stored blobs are untrusted (anyone with write access to the
// store); Decode never panics, and what it accepts re-encodes to itself.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, []byte("hello hello hello")))
	f.Add([]byte("s2\x00\x00\x00\x00\x00"))
	enc, _ := zstd.NewWriter(nil)
	f.Add(enc.EncodeAll([]byte("hello"), nil))
	f.Fuzz(func(t *testing.T, blob []byte) {
		out, err := Decode(blob, 1<<20)
		if err != nil {
			return
		}
		if again, err := Decode(Encode(nil, out), 1<<20); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("re-encoded blob does not round-trip: %v", err)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	src := []byte(strings.Repeat(`{"v":1,"seq":81234,"type":"command","session":"3b5e61ad529b381db97a5e53","command":"SELECT abalance FROM pgbench_accounts WHERE aid = 81234;","decision":"allow"}`+"\n", 3000))
	dst := make([]byte, 0, len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		dst = Encode(dst, src)
	}
}
