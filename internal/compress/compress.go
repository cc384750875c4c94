// Package compress packs the gateway's stored blobs (audit event runs,
// session recording chunks): S2, a faster Snappy, behind a prefix and a
// CRC-32C of the content, so that a damaged blob fails to decode rather
// than decoding into something else. Blobs written earlier with zstd
// (frame magic 28 B5 2F FD) still decode.
//
// S2 packs a run of JSON events about half as tightly as zstd's fastest
// level, at four times its speed; on the data path CPU is what counts.
package compress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

const prefix = "s2\x00"

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	zstdReader *zstd.Decoder
)

func init() {
	var err error
	if zstdReader, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20)); err != nil {
		panic(err)
	}
}

// Encode appends the packed form of src to dst[:0]'s array when it has
// room, or to a new one.
func Encode(dst, src []byte) []byte {
	need := len(prefix) + 4 + s2.MaxEncodedLen(len(src))
	if cap(dst) < need {
		dst = make([]byte, 0, need)
	}
	dst = append(dst[:0], prefix...)
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(src, castagnoli))
	enc := s2.Encode(dst[len(dst):cap(dst)], src)
	return dst[:len(dst)+len(enc)]
}

// Decode unpacks a blob of at most max bytes unpacked; it fails on a
// damaged or truncated blob, or one that would unpack larger than max.
func Decode(blob []byte, max int) ([]byte, error) {
	if !bytes.HasPrefix(blob, []byte(prefix)) {
		if len(blob) >= 4 && binary.LittleEndian.Uint32(blob) == 0xFD2FB528 {
			out, err := zstdReader.DecodeAll(blob, nil)
			if err == nil && len(out) > max {
				return nil, fmt.Errorf("unpacks to more than %d bytes", max)
			}
			return out, err
		}
		return nil, errors.New("not a packed blob")
	}
	body := blob[len(prefix):]
	if len(body) < 4 {
		return nil, errors.New("truncated")
	}
	n, err := s2.DecodedLen(body[4:])
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("unpacks to %d bytes, more than %d", n, max)
	}
	out, err := s2.Decode(make([]byte, n), body[4:])
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(out, castagnoli) != binary.LittleEndian.Uint32(body) {
		return nil, errors.New("checksum mismatch")
	}
	return out, nil
}
