package recording

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/compress"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Statement is one recorded statement with what the client received.
type Statement struct {
	Time time.Time
	// Ref is the sequence number of the audit event that decided it.
	Ref     uint64
	Text    string
	Params  []Value
	Columns []string
	// Rows are the rows kept; Omitted counts those over the caps.
	Rows    [][]Value
	Omitted int64
	// Done is set once the result arrived.
	Done     bool
	Result   int64 // rows returned or affected
	SQLState string
	Error    string
	Duration time.Duration
}

// Attestation is a recording event of the audit log: the digest a stored
// chunk must have.
type Attestation struct {
	Node    string
	Seq     uint64
	Session string
	Chunk   uint64
	Digest  string
}

// Attestations returns the recording events among a node's audit events:
// of one session, or of all with session "".
func Attestations(bodies [][]byte, session string) []Attestation {
	var out []Attestation
	for _, b := range bodies {
		var e struct {
			Type    string `json:"type"`
			Seq     uint64 `json:"seq"`
			Node    string `json:"node"`
			Session string `json:"session"`
			Chunk   uint64 `json:"chunk"`
			Digest  string `json:"sha256"`
		}
		if json.Unmarshal(b, &e) != nil || e.Type != audit.TypeRecording || (session != "" && e.Session != session) {
			continue
		}
		out = append(out, Attestation{Node: e.Node, Seq: e.Seq, Session: e.Session, Chunk: e.Chunk, Digest: e.Digest})
	}
	return out
}

// Problem is a stored chunk that does not match the audit log.
type Problem struct {
	Session string `json:"session"`
	Chunk   uint64 `json:"chunk"`
	Reason  string `json:"reason"`
}

func (p Problem) Error() string {
	return fmt.Sprintf("recording chunk %d of session %s: %s", p.Chunk, p.Session, p.Reason)
}

type chunkKey struct {
	session string
	chunk   uint64
}

// Check compares a node's stored chunks with the chunks its audit log
// attests: a chunk whose bytes changed, one attested but missing, and one
// stored but never attested are problems, in session and chunk order.
func Check(node string, chunks []store.RecordingChunk, att []Attestation) []Problem {
	want := make(map[chunkKey]Attestation, len(att))
	for _, a := range att {
		want[chunkKey{a.Session, a.Chunk}] = a
	}
	var out []Problem
	for _, c := range chunks {
		if c.Node != node {
			continue
		}
		k := chunkKey{c.Session, c.Chunk}
		a, ok := want[k]
		if !ok {
			out = append(out, Problem{c.Session, c.Chunk, "not in the audit log (inserted, or its event was lost)"})
			continue
		}
		delete(want, k)
		sum := sha256.Sum256(c.Body)
		if got := hex.EncodeToString(sum[:]); got != a.Digest {
			out = append(out, Problem{c.Session, c.Chunk, fmt.Sprintf("modified: its SHA-256 is %s, audit event %d says %s", got[:16]+"…", a.Seq, a.Digest[:min(16, len(a.Digest))]+"…")})
		}
	}
	for k, a := range want {
		out = append(out, Problem{k.session, k.chunk, fmt.Sprintf("missing: attested by audit event %d", a.Seq)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Session != out[j].Session {
			return out[i].Session < out[j].Session
		}
		return out[i].Chunk < out[j].Chunk
	})
	return out
}

// maxChunkBytes bounds what one stored chunk may unpack to.
const maxChunkBytes = 256 << 20

// Statements decodes a session's chunks, in order, into its statements.
func Statements(chunks []store.RecordingChunk) ([]Statement, error) {
	var out []Statement
	open := []int{} // statements without a result yet, oldest first
	var params []Value
	for _, c := range chunks {
		raw, err := compress.Decode(c.Body, maxChunkBytes)
		if err != nil {
			return out, fmt.Errorf("recording chunk %d of session %s: %w", c.Chunk, c.Session, err)
		}
		_, recs, err := decode(raw)
		if err != nil {
			return out, fmt.Errorf("recording chunk %d of session %s: %w", c.Chunk, c.Session, err)
		}
		for _, r := range recs {
			cur := func() *Statement {
				if len(open) == 0 {
					return nil
				}
				return &out[open[0]]
			}
			switch r.kind {
			case kindStatement:
				ref, n := binary.Uvarint(r.payload)
				if n <= 0 {
					return out, errCorrupt
				}
				open = append(open, len(out))
				out = append(out, Statement{Time: r.at, Ref: ref, Text: string(r.payload[n:]), Params: params})
				params = nil
			case kindParams:
				if params, err = decodeRow(r.payload); err != nil {
					return out, err
				}
			case kindColumns:
				row, err := decodeRow(r.payload)
				if err != nil {
					return out, err
				}
				if s := cur(); s != nil {
					s.Columns = s.Columns[:0]
					for _, v := range row {
						if v != nil {
							s.Columns = append(s.Columns, *v)
						}
					}
				}
			case kindRow:
				row, err := decodeRow(r.payload)
				if err != nil {
					return out, err
				}
				if s := cur(); s != nil {
					s.Rows = append(s.Rows, row)
				}
			case kindCopyOut, kindCopyIn:
				if s := cur(); s != nil {
					v := text(r.payload)
					s.Rows = append(s.Rows, []Value{&v})
				}
			case kindOmitted:
				n, k := binary.Uvarint(r.payload)
				if k <= 0 {
					return out, errCorrupt
				}
				if s := cur(); s != nil {
					s.Omitted += int64(n)
				}
			case kindDone:
				s := cur()
				if s == nil {
					continue
				}
				open = open[1:]
				p := r.payload
				rows, k := binary.Uvarint(p)
				if k <= 0 {
					return out, errCorrupt
				}
				p = p[k:]
				d, k := binary.Uvarint(p)
				if k <= 0 {
					return out, errCorrupt
				}
				s.Done, s.Result, s.Duration = true, int64(rows), time.Duration(d)
				if s.SQLState, p, err = readString(p[k:]); err != nil {
					return out, err
				}
				if s.Error, _, err = readString(p); err != nil {
					return out, err
				}
			}
		}
	}
	return out, nil
}

// Timeline merges a session's recorded statements into its timeline from
// the audit log: each recorded execution becomes a statement step with the
// decision of the command event it refers to, its result and the rows
// kept. Statements of the audit log with no recorded execution (a chunk
// not closed yet, or lost) stay as the log has them.
func Timeline(events []audit.TimelineEntry, stmts []Statement) []audit.TimelineEntry {
	bySeq := map[uint64]int{}
	for i, e := range events {
		if e.Kind == "statement" {
			if _, ok := bySeq[e.Seq]; !ok {
				bySeq[e.Seq] = i
			}
		}
	}
	recorded := map[uint64]bool{}
	out := make([]audit.TimelineEntry, 0, len(events)+len(stmts))
	for _, s := range stmts {
		recorded[s.Ref] = true
		e := audit.TimelineEntry{Seq: s.Ref, Time: s.Time, Kind: "statement", Text: s.Text,
			Params: s.Params, Columns: s.Columns, Result: s.Rows, NotRecorded: s.Omitted}
		var base *audit.TimelineEntry
		if i, ok := bySeq[s.Ref]; ok {
			base = &events[i]
			e.Decision, e.Rule, e.Review = base.Decision, base.Rule, base.Review
		}
		switch {
		case s.Done:
			rows := s.Result
			e.Rows, e.SQLState, e.Error, e.DurationUS = &rows, s.SQLState, s.Error, s.Duration.Microseconds()
		case base != nil:
			e.Rows, e.SQLState, e.Error, e.DurationUS = base.Rows, base.SQLState, base.Error, base.DurationUS
		}
		out = append(out, e)
	}
	for _, e := range events {
		if e.Kind != "statement" || !recorded[e.Seq] {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}
