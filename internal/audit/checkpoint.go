package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// KeyName names the gateway's checkpoint key in signed notes.
const KeyName = "gatehouse-audit"

// Checkpoint is the signed statement of a node's tree: its size and root.
// Its text, in signed-note format, is
//
//	gatehouse-audit/v1 <node>
//	<size>
//	<base64 root>
type Checkpoint struct {
	Node string
	Size uint64
	Root []byte
}

func (c Checkpoint) text() string {
	return fmt.Sprintf("gatehouse-audit/v1 %s\n%d\n%s\n", c.Node, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

// ParseCheckpoint verifies a signed checkpoint with verifier and parses it.
func ParseCheckpoint(signed []byte, verifier note.Verifier) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "gatehouse-audit/v1 ") {
		return Checkpoint{}, fmt.Errorf("checkpoint: unexpected text %q", n.Text)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint size: %w", err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size {
		return Checkpoint{}, fmt.Errorf("checkpoint root %q is not a base64 SHA-256", lines[2])
	}
	return Checkpoint{Node: strings.TrimPrefix(lines[0], "gatehouse-audit/v1 "), Size: size, Root: root}, nil
}

// signer signs notes with the gateway's ed25519 key.
type signer struct {
	key  ed25519.PrivateKey
	hash uint32
}

// NewSigner returns the note signer for the gateway's audit key.
func NewSigner(key ed25519.PrivateKey) (note.Signer, error) {
	v, err := NewVerifier(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &signer{key: key, hash: v.KeyHash()}, nil
}

func (s *signer) Name() string                    { return KeyName }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// NewVerifier returns the note verifier for the gateway's audit public key.
func NewVerifier(pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(KeyName, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// signCheckpoint signs the tree as it stands and stores the checkpoint.
func (l *Log) signCheckpoint(ctx context.Context) error {
	root, err := l.tree.GetRootHash(nil)
	if err != nil {
		return err
	}
	cp := Checkpoint{Node: l.opts.Node, Size: l.tree.End(), Root: root}
	signed, err := note.Sign(&note.Note{Text: cp.text()}, l.opts.Signer)
	if err != nil {
		return fmt.Errorf("sign checkpoint: %w", err)
	}
	if err := l.opts.Store.PutAuditCheckpoint(ctx, store.AuditCheckpoint{Node: cp.Node, Size: cp.Size,
		Note: string(signed), Frontier: joinHashes(l.tree.Hashes())}); err != nil {
		return err
	}
	l.checkpoint, l.lastCP = cp.Size, time.Now()
	l.mu.Lock()
	l.signed = cp.Size
	l.space.Broadcast()
	l.mu.Unlock()
	return nil
}

func joinHashes(hs [][]byte) []byte {
	out := make([]byte, 0, 4+len(hs)*sha256.Size)
	out = binary.BigEndian.AppendUint32(out, uint32(len(hs)))
	for _, h := range hs {
		out = append(out, h...)
	}
	return out
}

func splitHashes(b []byte) [][]byte {
	if len(b) < 4 {
		return nil
	}
	n := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	out := make([][]byte, 0, n)
	for i := 0; i < n && len(b) >= sha256.Size; i++ {
		out = append(out, b[:sha256.Size])
		b = b[sha256.Size:]
	}
	return out
}
