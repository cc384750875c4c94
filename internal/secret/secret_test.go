package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
)

func testKey(t *testing.T) *MasterKey {
	t.Helper()
	k, _, err := LoadOrCreateMasterKeyFile(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKey(t)
	aad := []byte("connection/db/password")
	ct, err := k.Seal([]byte("hunter2"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("hunter2")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	ct2, _ := k.Seal([]byte("hunter2"), aad)
	if bytes.Equal(ct, ct2) {
		t.Error("two seals of one plaintext are equal: nonce reuse")
	}
	pt, err := k.Open(ct, aad)
	if err != nil || string(pt) != "hunter2" {
		t.Fatalf("Open = %q, %v", pt, err)
	}

	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	other := testKey(t)
	for name, open := range map[string]func() ([]byte, error){
		"other row":   func() ([]byte, error) { return k.Open(ct, []byte("connection/other/password")) },
		"tampered":    func() ([]byte, error) { return k.Open(tampered, aad) },
		"other key":   func() ([]byte, error) { return other.Open(ct, aad) },
		"truncated":   func() ([]byte, error) { return k.Open(ct[:5], aad) },
		"bad version": func() ([]byte, error) { return k.Open(append([]byte{9}, ct[1:]...), aad) },
	} {
		if _, err := open(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: Open error = %v, want ErrDecrypt", name, err)
		}
	}
}

func TestMasterKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	k1, created, err := LoadOrCreateMasterKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	k2, created, err := LoadOrCreateMasterKeyFile(path)
	if err != nil || created || k2.ID() != k1.ID() {
		t.Fatalf("second load: created=%v id %s vs %s err=%v", created, k2.ID(), k1.ID(), err)
	}
	os.WriteFile(path, []byte("not base64!"), 0o600)
	if _, _, err := LoadOrCreateMasterKeyFile(path); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Errorf("corrupt key file: err = %v", err)
	}
	if _, err := ParseMasterKey("c2hvcnQ="); err == nil {
		t.Error("short key accepted")
	}
}

func TestResolve(t *testing.T) {
	k := testKey(t)
	aad := []byte("a")
	sealed, _ := k.Seal([]byte("inline-pw"), aad)
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("file-pw\n"), 0o600)
	t.Setenv("GH_TEST_PW", "env-pw")

	tests := []struct {
		name    string
		cred    resource.Credential
		want    string
		wantErr string
	}{
		{"none", resource.Credential{Source: resource.CredentialNone}, "", ""},
		{"inline", resource.Credential{Source: resource.CredentialInline}, "inline-pw", ""},
		{"env", resource.Credential{Source: resource.CredentialEnv, Ref: "GH_TEST_PW"}, "env-pw", ""},
		{"env missing", resource.Credential{Source: resource.CredentialEnv, Ref: "GH_TEST_UNSET"}, "", "env:GH_TEST_UNSET: variable is not set"},
		{"file", resource.Credential{Source: resource.CredentialFile, Ref: file}, "file-pw", ""},
		{"file missing", resource.Credential{Source: resource.CredentialFile, Ref: "/nonexistent/pw"}, "", "file:/nonexistent/pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.cred, sealed, k, aad)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
