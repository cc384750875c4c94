// Package secret holds target credentials safely: envelope encryption at rest
// with AES-256-GCM under a master key that never enters the database, and
// resolution of credential references (env:NAME, file:PATH) where the
// credential is used. Nothing here logs or returns a secret in an error.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
)

// KeySize is the master key length: AES-256.
const KeySize = 32

// sealVersion prefixes every ciphertext so the format can change later.
const sealVersion byte = 1

// MasterKey encrypts credentials at rest. Keep it outside the store: in the
// data directory (mode 0600), a file of its own, or GATEHOUSE_MASTER_KEY.
type MasterKey struct {
	aead cipher.AEAD
	id   string
	raw  []byte
}

// ErrDecrypt means a ciphertext did not authenticate: the wrong master key,
// or data changed at rest.
var ErrDecrypt = errors.New("credential did not decrypt: wrong master key, or the stored data was altered")

// NewMasterKey wraps raw key bytes.
func NewMasterKey(raw []byte) (*MasterKey, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte("gatehouse master key id"))
	return &MasterKey{aead: aead, id: hex.EncodeToString(mac.Sum(nil)[:8]), raw: append([]byte(nil), raw...)}, nil
}

// Derive returns a key for one purpose (HMAC-SHA256 of the purpose under
// the master key): every node of a gateway derives the same one, and it
// reveals nothing of the master key.
func (k *MasterKey) Derive(purpose string) []byte {
	mac := hmac.New(sha256.New, k.raw)
	mac.Write([]byte("gatehouse derived key: " + purpose))
	return mac.Sum(nil)
}

// ParseMasterKey decodes a base64 (standard or URL alphabet) key, as written
// by GenerateMasterKeyFile or given in GATEHOUSE_MASTER_KEY.
func ParseMasterKey(encoded string) (*MasterKey, error) {
	s := strings.TrimSpace(encoded)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(s); err == nil {
			return NewMasterKey(raw)
		}
	}
	return nil, errors.New("master key is not valid base64")
}

// ID is a short, non-secret fingerprint of the key, safe to log.
func (k *MasterKey) ID() string { return k.id }

// Seal encrypts plaintext. aad binds the ciphertext to its owner (for
// example "connection/orders-db/password") so a ciphertext copied to another
// row does not decrypt there.
func (k *MasterKey) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1, 1+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	nonce := out[1 : 1+k.aead.NonceSize()]
	out = out[:1+k.aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: random nonce: %w", err)
	}
	return k.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts what Seal produced with the same aad.
func (k *MasterKey) Open(ciphertext, aad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(ciphertext) < 1+ns+k.aead.Overhead() || ciphertext[0] != sealVersion {
		return nil, ErrDecrypt
	}
	pt, err := k.aead.Open(nil, ciphertext[1:1+ns], ciphertext[1+ns:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// LoadOrCreateMasterKeyFile reads the key at path, creating it (mode 0600)
// when it does not exist. created reports whether a new key was written.
func LoadOrCreateMasterKeyFile(path string) (key *MasterKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, KeySize)
		if _, err := rand.Read(raw); err != nil {
			return nil, false, fmt.Errorf("generate master key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("create master key file: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, false, fmt.Errorf("write master key file %s: %w", path, werr)
		}
		key, err := NewMasterKey(raw)
		return key, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("read master key file: %w", err)
	}
	key, err = ParseMasterKey(string(b))
	if err != nil {
		return nil, false, fmt.Errorf("master key file %s: %w", path, err)
	}
	return key, false, nil
}

// Resolve returns the plaintext of a credential. Inline credentials are
// decrypted from sealed with aad; references are read where the gateway
// runs. Errors name the reference, never the value.
func Resolve(c resource.Credential, sealed []byte, key *MasterKey, aad []byte) (string, error) {
	switch c.Source {
	case resource.CredentialNone:
		return "", nil
	case resource.CredentialInline:
		if key == nil {
			return "", errors.New("inline credential: no master key loaded")
		}
		pt, err := key.Open(sealed, aad)
		if err != nil {
			return "", err
		}
		return string(pt), nil
	case resource.CredentialEnv:
		v, ok := os.LookupEnv(c.Ref)
		if !ok {
			return "", fmt.Errorf("credential reference env:%s: variable is not set in the gateway's environment", c.Ref)
		}
		return v, nil
	case resource.CredentialFile:
		b, err := os.ReadFile(c.Ref)
		if err != nil {
			// The path is configuration, not a secret; the os error says why.
			return "", fmt.Errorf("credential reference file:%s: %w", c.Ref, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", fmt.Errorf("credential source %q is unknown", c.Source)
}

// ConnectionAAD is the associated data that binds a connection's sealed
// credential to that connection.
func ConnectionAAD(connection string) []byte {
	return []byte("gatehouse/connection/" + connection + "/password")
}
