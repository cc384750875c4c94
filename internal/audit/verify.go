package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Problem kinds reported by Verify.
const (
	ProblemModified     = "modified"
	ProblemDeleted      = "deleted"
	ProblemInserted     = "inserted"
	ProblemReordered    = "reordered"
	ProblemBadSignature = "bad signature"
	ProblemTailMissing  = "tail missing"
)

// Problem is the first thing wrong with a log.
type Problem struct {
	Kind string `json:"kind"`
	// Seq is the event the problem is found at (0 for a checkpoint's).
	Seq    uint64 `json:"seq,omitempty"`
	Detail string `json:"detail"`
}

func (p *Problem) Error() string {
	if p.Seq > 0 {
		return fmt.Sprintf("event %d: %s: %s", p.Seq, p.Kind, p.Detail)
	}
	return fmt.Sprintf("%s: %s", p.Kind, p.Detail)
}

// Report is the outcome of Verify.
type Report struct {
	Node        string `json:"node"`
	Events      uint64 `json:"events"`
	Checkpoints int    `json:"checkpoints"`
	// Signed is the size of the last valid checkpoint; events after it are
	// chained but not yet signed.
	Signed uint64 `json:"signed"`
	// Recordings counts the session recording chunks checked against the
	// log's recording events (online verification only).
	Recordings int      `json:"recording_chunks,omitempty"`
	Problem    *Problem `json:"problem,omitempty"`
}

// OK reports a log with no problem.
func (r Report) OK() bool { return r.Problem == nil }

func (r Report) String() string {
	if r.Problem != nil {
		return fmt.Sprintf("node %s: FAILED at %v", r.Node, r.Problem)
	}
	s := fmt.Sprintf("node %s: OK: %d events, %d checkpoints, signed through event %d", r.Node, r.Events, r.Checkpoints, r.Signed)
	if r.Events > r.Signed {
		s += fmt.Sprintf(" (%d newer events chained, awaiting the next checkpoint)", r.Events-r.Signed)
	}
	if r.Recordings > 0 {
		s += fmt.Sprintf("; %d recording chunks match their events", r.Recordings)
	}
	return s
}

type eventHead struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
	Node string `json:"node"`
}

// Verify checks one node's events (canonical bodies, in stored order) and
// signed checkpoints against the gateway's public key: every event parses,
// sequence numbers run from 1 without gaps, each event carries the hash of
// the one before, every checkpoint's signature holds and its root matches
// the events it covers, and no checkpoint covers events the log lacks. It
// reports the first problem.
func Verify(node string, bodies [][]byte, checkpoints []string, verifier note.Verifier) Report {
	r := Report{Node: node, Events: uint64(len(bodies)), Checkpoints: len(checkpoints)}
	cps := make([]Checkpoint, 0, len(checkpoints))
	for _, signed := range checkpoints {
		cp, err := ParseCheckpoint([]byte(signed), verifier)
		if err != nil {
			r.Problem = &Problem{Kind: ProblemBadSignature, Detail: fmt.Sprintf("checkpoint %q: %v", firstLine(signed), err)}
			return r
		}
		if cp.Node != node {
			r.Problem = &Problem{Kind: ProblemBadSignature, Detail: fmt.Sprintf("checkpoint of node %q in the log of node %q", cp.Node, node)}
			return r
		}
		cps = append(cps, cp)
	}

	heads := make([]eventHead, len(bodies))
	hashes := make([][32]byte, len(bodies))
	where := map[uint64][]int{} // seq → positions
	for i, b := range bodies {
		if err := json.Unmarshal(b, &heads[i]); err != nil || heads[i].Seq == 0 {
			r.Problem = &Problem{Kind: ProblemModified, Seq: uint64(i + 1), Detail: "the event at this position is not a valid event"}
			return r
		}
		hashes[i] = sha256.Sum256(b)
		where[heads[i].Seq] = append(where[heads[i].Seq], i)
	}

	tree := rangeFactory.NewEmptyRange(0)
	next := 0 // next checkpoint to check
	var prev [32]byte
	for i, h := range heads {
		want := uint64(i + 1)
		if p := sequenceProblem(heads, hashes, where, i, want); p != nil {
			r.Problem = p
			return r
		}
		if h.Prev != hex.EncodeToString(prev[:]) {
			r.Problem = chainProblem(heads, hashes, i)
			return r
		}
		if h.Node != node {
			r.Problem = &Problem{Kind: ProblemInserted, Seq: want, Detail: fmt.Sprintf("the event names node %q", h.Node)}
			return r
		}
		prev = hashes[i]
		tree.Append(rfc6962.DefaultHasher.HashLeaf(bodies[i]), nil)
		for next < len(cps) && cps[next].Size == want {
			root, _ := tree.GetRootHash(nil)
			if !bytes.Equal(root, cps[next].Root) {
				r.Problem = &Problem{Kind: ProblemModified, Seq: want, Detail: fmt.Sprintf(
					"events up to %d do not match the signed checkpoint of size %d: the log before it was rewritten", want, cps[next].Size)}
				return r
			}
			r.Signed = want
			next++
		}
	}
	if next < len(cps) {
		r.Problem = &Problem{Kind: ProblemTailMissing, Seq: r.Events + 1, Detail: fmt.Sprintf(
			"a checkpoint signed %d events; the log holds %d", cps[len(cps)-1].Size, r.Events)}
	}
	return r
}

// sequenceProblem explains an event at position i whose sequence number is
// not want.
func sequenceProblem(heads []eventHead, hashes [][32]byte, where map[uint64][]int, i int, want uint64) *Problem {
	got := heads[i].Seq
	switch {
	case got == want:
		return nil
	case got+1 == want && i+1 < len(heads) && heads[i+1].Prev == hex.EncodeToString(hashes[i][:]):
		// Two events claim one number and the chain goes on from this
		// one: the one before it was slipped in.
		return &Problem{Kind: ProblemInserted, Seq: got, Detail: fmt.Sprintf("two events claim sequence number %d; the chain continues from the second, so the first was inserted", got)}
	case got > want:
		if later := where[want]; len(later) > 0 {
			return &Problem{Kind: ProblemReordered, Seq: want, Detail: fmt.Sprintf("event %d is at position %d, after event %d", want, later[0]+1, got)}
		}
		return &Problem{Kind: ProblemDeleted, Seq: want, Detail: fmt.Sprintf("events %d to %d are missing", want, got-1)}
	default:
		return &Problem{Kind: ProblemInserted, Seq: want, Detail: fmt.Sprintf("an event claiming sequence number %d stands where %d belongs", got, want)}
	}
}

// chainProblem explains an event at position i whose prev is not the hash
// of the event before it.
func chainProblem(heads []eventHead, hashes [][32]byte, i int) *Problem {
	seq := heads[i].Seq
	if i >= 1 && i+1 < len(heads) && heads[i+1].Prev == hex.EncodeToString(hashes[i-1][:]) {
		// The next event chains to the one before this: this one does
		// not belong (it replaced or was slipped in).
		return &Problem{Kind: ProblemInserted, Seq: seq, Detail: "the event is not part of the chain: the next event follows the one before it"}
	}
	if i >= 1 {
		return &Problem{Kind: ProblemModified, Seq: seq - 1, Detail: fmt.Sprintf("its content no longer matches the hash event %d carries", seq)}
	}
	return &Problem{Kind: ProblemModified, Seq: seq, Detail: "the first event does not start the chain"}
}

func firstLine(s string) string {
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Export line for a checkpoint; event lines are the events' bodies.
type exportCheckpoint struct {
	Checkpoint string `json:"checkpoint"`
}

// WriteExport writes a node's events, one canonical body per line, then
// its signed checkpoints, one JSON object per line.
func WriteExport(w io.Writer, bodies [][]byte, checkpoints []string) error {
	bw := bufio.NewWriter(w)
	for _, b := range bodies {
		bw.Write(b)
		bw.WriteByte('\n')
	}
	for _, c := range checkpoints {
		line, _ := json.Marshal(exportCheckpoint{Checkpoint: c})
		bw.Write(line)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// ReadExport reads what WriteExport wrote; the node is taken from the
// events (or the checkpoints when there are none).
func ReadExport(r io.Reader) (node string, bodies [][]byte, checkpoints []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if bytes.HasPrefix(b, []byte(`{"checkpoint":`)) {
			var c exportCheckpoint
			if err := json.Unmarshal(b, &c); err != nil {
				return "", nil, nil, fmt.Errorf("line %d: %w", line, err)
			}
			checkpoints = append(checkpoints, c.Checkpoint)
			continue
		}
		bodies = append(bodies, append([]byte(nil), b...))
		if node == "" {
			var h eventHead
			json.Unmarshal(b, &h)
			node = h.Node
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, nil, err
	}
	if node == "" && len(checkpoints) > 0 {
		if i := bytes.IndexByte([]byte(checkpoints[0]), '\n'); i > 0 {
			fmt.Sscanf(checkpoints[0][:i], "gatehouse-audit/v1 %s", &node)
		}
	}
	return node, bodies, checkpoints, nil
}

// Proof shows one event's inclusion in a signed checkpoint, without the
// rest of the log.
type Proof struct {
	Node       string   `json:"node"`
	Seq        uint64   `json:"seq"`
	Event      string   `json:"event"`      // the event's canonical body
	Checkpoint string   `json:"checkpoint"` // signed note
	Hashes     [][]byte `json:"hashes"`     // RFC 6962 audit path
}

// Prove builds the inclusion proof of event seq in the smallest checkpoint
// covering it.
func Prove(node string, bodies [][]byte, checkpoints []string, verifier note.Verifier, seq uint64) (*Proof, error) {
	if seq == 0 || seq > uint64(len(bodies)) {
		return nil, fmt.Errorf("event %d is not in the log of node %s (%d events)", seq, node, len(bodies))
	}
	for _, signed := range checkpoints {
		cp, err := ParseCheckpoint([]byte(signed), verifier)
		if err != nil {
			return nil, err
		}
		if cp.Size < seq {
			continue
		}
		leaves := make([][]byte, cp.Size)
		for i := range leaves {
			leaves[i] = rfc6962.DefaultHasher.HashLeaf(bodies[i])
		}
		return &Proof{Node: node, Seq: seq, Event: string(bodies[seq-1]), Checkpoint: signed, Hashes: auditPath(seq-1, leaves)}, nil
	}
	return nil, fmt.Errorf("no checkpoint covers event %d yet; try again after the next one", seq)
}

// auditPath is RFC 6962's PATH(m, D[n]).
func auditPath(m uint64, leaves [][]byte) [][]byte {
	n := uint64(len(leaves))
	if n <= 1 {
		return nil
	}
	k := uint64(1) << (bits.Len64(n-1) - 1) // largest power of two below n
	if m < k {
		return append(auditPath(m, leaves[:k]), treeHash(leaves[k:]))
	}
	return append(auditPath(m-k, leaves[k:]), treeHash(leaves[:k]))
}

func treeHash(leaves [][]byte) []byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := uint64(1) << (bits.Len64(uint64(len(leaves))-1) - 1)
	return rfc6962.DefaultHasher.HashChildren(treeHash(leaves[:k]), treeHash(leaves[k:]))
}

// VerifyProof checks a proof against the gateway's public key: the
// checkpoint's signature, then the event's path to its root.
func VerifyProof(p *Proof, verifier note.Verifier) error {
	cp, err := ParseCheckpoint([]byte(p.Checkpoint), verifier)
	if err != nil {
		return err
	}
	var h eventHead
	if err := json.Unmarshal([]byte(p.Event), &h); err != nil || h.Seq != p.Seq || h.Node != cp.Node {
		return errors.New("the event does not match the proof's sequence number and node")
	}
	leaf := rfc6962.DefaultHasher.HashLeaf([]byte(p.Event))
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Seq-1, cp.Size, leaf, p.Hashes, cp.Root); err != nil {
		return fmt.Errorf("event %d is not in the checkpoint of size %d: %w", p.Seq, cp.Size, err)
	}
	return nil
}

// ReadStore reads a node's events (canonical bodies, in order) and signed
// checkpoints from the store, as Verify, Prove and WriteExport take them.
func ReadStore(ctx context.Context, st store.Store, node string) (bodies [][]byte, checkpoints []string, err error) {
	events, err := st.AuditEvents(ctx, node, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	cps, err := st.AuditCheckpoints(ctx, node)
	if err != nil {
		return nil, nil, err
	}
	bodies = make([][]byte, len(events))
	for i, e := range events {
		bodies[i] = e.Body
	}
	for _, c := range cps {
		checkpoints = append(checkpoints, c.Note)
	}
	return bodies, checkpoints, nil
}
