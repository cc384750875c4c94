package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// loadOrCreateSigningKey returns the node's ed25519 key that signs audit
// checkpoints, creating it (private key mode 0600, public key beside it)
// on first start.
func loadOrCreateSigningKey(privPath, pubPath string) (ed25519.PrivateKey, bool, error) {
	b, err := os.ReadFile(privPath)
	if err == nil {
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, false, fmt.Errorf("signing key %s: no PEM block", privPath)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, false, fmt.Errorf("signing key %s: %w", privPath, err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, false, fmt.Errorf("signing key %s is not ed25519", privPath)
		}
		return priv, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read signing key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate signing key: %w", err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	if err := os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return nil, false, fmt.Errorf("write signing key: %w", err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, false, fmt.Errorf("write signing public key: %w", err)
	}
	return priv, true, nil
}
