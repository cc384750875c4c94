package store

import (
	"bytes"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestAuditRunFormats: runs are stored packed by package compress; runs
// stored zstd-compressed before still read.
func TestAuditRunFormats(t *testing.T) {
	run := []byte(strings.Repeat(`{"v":1,"seq":1,"type":"command","command":"SELECT 1"}`+"\n", 200))
	if got, err := DecompressAuditRun(compressAuditRun(run)); err != nil || !bytes.Equal(got, run) {
		t.Fatalf("round trip: %v", err)
	}
	enc, _ := zstd.NewWriter(nil)
	if got, err := DecompressAuditRun(enc.EncodeAll(run, nil)); err != nil || !bytes.Equal(got, run) {
		t.Errorf("a zstd run written before: %v", err)
	}
}
