package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// credential is a cached sign-on for one gateway.
type credential struct {
	Token     string    `json:"token"`
	TokenID   string    `json:"tokenId"`
	Identity  string    `json:"identity"`
	IssuedAt  time.Time `json:"issuedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Refresh renews the sign-on before it expires (empty: it cannot be
	// renewed; sign in again).
	Refresh string `json:"refresh,omitempty"`
}

// renewBefore is how long before expiry a cached token is renewed: the
// last quarter of its life.
func (c credential) renewBefore() time.Duration {
	return c.ExpiresAt.Sub(c.IssuedAt) / 4
}

// needsRefresh reports whether c should be renewed at now.
func (c credential) needsRefresh(now time.Time) bool {
	return c.Refresh != "" && !c.ExpiresAt.IsZero() && now.After(c.ExpiresAt.Add(-c.renewBefore()))
}

// credentialsFile is where sign-ons are cached: GATEHOUSE_CREDENTIALS, or
// gatehouse/credentials.json in the user's config directory.
func credentialsFile() (string, error) {
	if p := os.Getenv("GATEHOUSE_CREDENTIALS"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory for cached sign-ons: %w (set GATEHOUSE_CREDENTIALS)", err)
	}
	return filepath.Join(dir, "gatehouse", "credentials.json"), nil
}

// loadCredentials reads the cache, keyed by gateway URL. A cache that
// others may read is refused: it holds tokens.
func loadCredentials() (map[string]credential, string, error) {
	path, err := credentialsFile()
	if err != nil {
		return nil, "", err
	}
	creds := map[string]credential{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return creds, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("read cached sign-ons: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, path, fmt.Errorf("cached sign-ons %s are readable by others (mode %o): run chmod 600 %s, or gatehouse logout", path, st.Mode().Perm(), path)
	}
	if err := json.NewDecoder(f).Decode(&creds); err != nil {
		return nil, path, fmt.Errorf("cached sign-ons %s: %w (delete the file and sign in again)", path, err)
	}
	return creds, path, nil
}

// saveCredentials writes the cache with mode 0600 (its directory 0700),
// replacing the file in one rename.
func saveCredentials(path string, creds map[string]credential) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save sign-on: %w", err)
	}
	data, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return fmt.Errorf("save sign-on: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save sign-on: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save sign-on: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save sign-on: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save sign-on: %w", err)
	}
	return nil
}
