package devca

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestCAAndServerCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, created, err := LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = %v, %v", created, err)
	}
	if st, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode = %v, %v", st.Mode().Perm(), err)
	}
	cert, err := ca.ServerCertificate(dir, DefaultHosts("gw.example"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, CAFile))
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	for _, host := range []string{"127.0.0.1", "localhost", "gw.example", "::1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", host, err)
		}
	}

	// A second start reuses both; a new host name forces a reissue.
	ca2, created, err := LoadOrCreate(dir)
	if err != nil || created || !ca2.Cert.Equal(ca.Cert) {
		t.Fatalf("reload CA: created=%v err=%v", created, err)
	}
	again, _ := ca2.ServerCertificate(dir, DefaultHosts("gw.example"))
	if !again.Leaf.Equal(cert.Leaf) {
		t.Error("server certificate reissued although still good")
	}
	other, _ := ca2.ServerCertificate(dir, DefaultHosts("new.example"))
	if other.Leaf.Equal(cert.Leaf) || other.Leaf.VerifyHostname("new.example") != nil {
		t.Error("server certificate not reissued for a new host name")
	}
	var _ tls.Certificate = other
}

func TestCorruptCA(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, CAFile), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("junk"), 0o600)
	if _, _, err := LoadOrCreate(dir); err == nil {
		t.Error("corrupt CA loaded")
	}
}
