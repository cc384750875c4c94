package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCredentialNeedsRefresh(t *testing.T) {
	issued := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	c := credential{IssuedAt: issued, ExpiresAt: issued.Add(12 * time.Hour), Refresh: "h"}
	for _, tc := range []struct {
		at   time.Duration // after issue
		want bool
	}{
		{time.Hour, false},
		{9*time.Hour - time.Second, false},
		{9*time.Hour + time.Second, true}, // the last quarter
		{13 * time.Hour, true},            // expired: still try
	} {
		if got := c.needsRefresh(issued.Add(tc.at)); got != tc.want {
			t.Errorf("needsRefresh %s after issue = %v, want %v", tc.at, got, tc.want)
		}
	}
	c.Refresh = ""
	if c.needsRefresh(issued.Add(11 * time.Hour)) {
		t.Error("a sign-on without a refresh handle cannot be renewed")
	}
}

func TestCredentialsFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "credentials.json")
	t.Setenv("GATEHOUSE_CREDENTIALS", path)
	want := map[string]credential{"https://gw:8443": {Token: "gh1_x", TokenID: "id", ExpiresAt: time.Now().Add(time.Hour).UTC().Round(0)}}
	if err := saveCredentials(path, want); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		st, _ := os.Stat(p)
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %o: others may read it", p, perm)
		}
	}
	got, _, err := loadCredentials()
	if err != nil || got["https://gw:8443"].Token != "gh1_x" {
		t.Fatalf("load = %+v, %v", got, err)
	}
	os.Chmod(path, 0o644)
	if _, _, err := loadCredentials(); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("a world-readable cache loads: %v", err)
	}
}
