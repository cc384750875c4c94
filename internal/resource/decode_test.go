package resource

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeInterfaceExample(t *testing.T) {
	manifest, err := os.ReadFile("testdata/manifests/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Decode(manifest)
	if err != nil {
		t.Fatalf("Decode(valid.yaml) = %v", err)
	}
	if len(docs) != 3 {
		t.Fatalf("Decode(valid.yaml) returned %d documents, want 3", len(docs))
	}
	id := docs[0].Identity
	if docs[0].Kind != KindIdentity || id.Name != "ci-bot" || id.Type != IdentityService || len(id.Groups) != 1 || id.Groups[0] != "dba" {
		t.Errorf("identity = %+v", id)
	}
	c := docs[1].Connection
	if docs[1].Line != 6 {
		t.Errorf("connection document line = %d, want 6", docs[1].Line)
	}
	if c.Name != "orders-db" || c.Type != TypePostgres || c.Address != "127.0.0.1:5432" || c.Database != "orders" || c.User != "app" {
		t.Errorf("connection = %+v", c)
	}
	if c.TLS.Mode != TLSDisable {
		t.Errorf("default tls.mode = %q, want disable", c.TLS.Mode)
	}
	cred, err := ParseCredential(c.Password)
	if err != nil || cred.Source != CredentialEnv || cred.Ref != "ORDERS_DB_PASSWORD" {
		t.Errorf("ParseCredential(%q) = %+v, %v", c.Password, cred, err)
	}
	if c.DefaultAction != ActionAllow {
		t.Errorf("default defaultAction = %q, want allow", c.DefaultAction)
	}
	p := docs[2].Policy
	if docs[2].Kind != KindPolicy || p == nil || len(p.Rules) != 2 || p.Rules[0].Line != 23 || p.Presets[0] != "postgres-production" {
		t.Fatalf("policy = %+v", docs[2])
	}
	if !p.Connections.Selects(*c) || p.Connections.Selects(Connection{Name: "orders-db", Labels: map[string]string{"env": "dev"}}) {
		t.Errorf("selector %+v: must select orders-db with env=prod only", p.Connections)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		line     int
		contains string
	}{
		{"malformed yaml", readFile(t, "malformed.yaml"), 4, "mapping values are not allowed"},
		{"unknown kind", readFile(t, "unknown-kind.yaml"), 4, `unknown kind "Databse"`},
		{"no kind", "name: x\ntype: postgres\n", 1, "no kind"},
		{"not a mapping", "- a\n- b\n", 1, "not a mapping"},
		{"unknown field", "kind: Connection\nname: db\ntype: postgres\naddress: 127.0.0.1:5432\npasword: x\n", 5, `unknown field "pasword" in Connection`},
		{"unknown nested field", "kind: Connection\nname: db\ntype: postgres\naddress: h:1\ntls:\n  mod: require\n", 6, `unknown field "mod" in Connection.tls`},
		{"allow list replaced", "kind: Connection\nname: db\ntype: postgres\naddress: h:1\nallow:\n  groups: [x]\n", 6, "replaced by access rules"},
		{"bad default action", "kind: Connection\nname: db\ntype: postgres\naddress: h:1\ndefaultAction: review\n", 1, `defaultAction "review" is invalid`},
		{"unknown rule field", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules:\n  - name: r\n    acton: block\n", 6, `unknown field "acton" in Policy.rules[0]`},
		{"policy selects nothing", "kind: Policy\nname: p\nrules: [{name: r, action: block, when: 'true'}]\n", 1, "selects nothing"},
		{"bad rule action", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: deny, when: 'true'}]\n", 1, `action "deny" is invalid`},
		{"mask without what", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: mask, when: 'true'}]\n", 1, "needs mask.detectors"},
		{"mask column not qualified", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: mask, when: 'true', mask: {columns: [users.ssn]}}]\n", 1, "want schema.table.column"},
		{"mask on a block rule", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: block, when: 'true', mask: {detectors: [email]}}]\n", 1, "mask is only for action mask"},
		{"review on an allow rule", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: allow, when: 'true', review: {quorum: 2}}]\n", 1, "review is only for action review"},
		{"unknown review field", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules:\n  - name: r\n    action: review\n    when: 'true'\n    review: {quorom: 2}\n", 8, `unknown field "quorom" in Policy.rules[0].review`},
		{"review quorum", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: review, when: 'true', review: {quorum: 11}}]\n", 1, "review.quorum 11"},
		{"review timeout", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: review, when: 'true', review: {timeout: soon}}]\n", 1, "review.timeout \"soon\""},
		{"review approver group", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: review, when: 'true', review: {approvers: ['Bad Group']}}]\n", 1, "review.approvers group"},
		{"rule without when", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: block}]\n", 1, "when is required"},
		{"duplicate rule", "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules: [{name: r, action: block, when: 'true'}, {name: r, action: allow, when: 'true'}]\n", 1, "defined twice"},
		{"bad glob", "kind: Policy\nname: p\nconnections: {names: ['[']}\nrules: [{name: r, action: block, when: 'true'}]\n", 1, "not a valid glob"},
		{"duplicate", "kind: Identity\nname: a\n---\nkind: Identity\nname: b\n---\nkind: Identity\nname: a\n", 7, `duplicate Identity "a" (first defined on line 1)`},
		{"bad type", "kind: Connection\nname: db\ntype: oracle\naddress: h:1\n", 1, `type "oracle" is invalid`},
		{"bad address", "kind: Connection\nname: db\ntype: postgres\naddress: nowhere\n", 1, "want host:port"},
		{"bad port", "kind: Connection\nname: db\ntype: postgres\naddress: h:99999\n", 1, "port must be 1-65535"},
		{"bad url", "kind: Connection\nname: k\ntype: kubernetes\naddress: 10.0.0.1:6443\n", 1, "want an http(s) URL"},
		{"bad name", "kind: Identity\nname: Alice Smith\n", 1, `name "Alice Smith" is invalid`},
		{"upper-case e-mail", "kind: Identity\nname: Alice@Example.com\n", 1, `name "Alice@Example.com" is invalid`},
		{"missing name", "kind: Identity\ntype: user\n", 1, "name is required"},
		{"federation on a user", "kind: Identity\nname: a\nfederation: {issuer: 'https://ci.example', audience: g, condition: 'true'}\n", 1, "federation is for service identities"},
		{"federation over http", "kind: Identity\nname: a\ntype: service\nfederation: {issuer: 'http://ci.example', audience: g, condition: 'true'}\n", 1, "must use https"},
		{"federation without audience", "kind: Identity\nname: a\ntype: service\nfederation: {issuer: 'https://ci.example', condition: 'true'}\n", 1, "federation.audience is required"},
		{"federation without condition", "kind: Identity\nname: a\ntype: service\nfederation: {issuer: 'https://ci.example', audience: g}\n", 1, "every token of https://ci.example would act as this identity"},
		{"federation ttl", "kind: Identity\nname: a\ntype: service\nfederation: {issuer: 'https://ci.example', audience: g, condition: 'true', tokenTTL: 48h}\n", 1, "federation.tokenTTL \"48h\""},
		{"federation unknown field", "kind: Identity\nname: a\ntype: service\nfederation: {issuer: 'https://ci.example', audiance: g}\n", 4, `unknown field "audiance"`},
		{"bad identity type", "kind: Identity\nname: a\ntype: robot\n", 1, `type "robot" is invalid`},
		{"wrong field type", "kind: Identity\nname: a\ngroups: 7\n", 3, "cannot unmarshal"},
		{"bad env ref", "kind: Connection\nname: db\ntype: postgres\naddress: h:1\npassword: env:not-a-var\n", 1, "env reference"},
		{"bad tls mode", "kind: Connection\nname: db\ntype: postgres\naddress: h:1\ntls: {mode: maybe}\n", 1, "tls.mode"},
		{"api version", "apiVersion: v9\nkind: Identity\nname: a\n", 1, "apiVersion"},
		{"empty", "", 0, "no documents"},
		{"only separators", "---\n---\n", 0, "no documents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Decode([]byte(tt.manifest))
			if err == nil {
				t.Fatalf("Decode(%q) = %d docs, want an error containing %q", tt.manifest, len(docs), tt.contains)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %T %v is not a *DecodeError", err, err)
			}
			if de.Line != tt.line || !strings.Contains(de.Msg, tt.contains) {
				t.Errorf("Decode error = line %d %q, want line %d containing %q", de.Line, de.Msg, tt.line, tt.contains)
			}
			if docs != nil {
				t.Errorf("Decode returned documents along with an error")
			}
		})
	}
}

func TestDecodeJSONAndInlineEscape(t *testing.T) {
	docs, err := Decode([]byte(readFile(t, "json.json")))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := ParseCredential(docs[0].Connection.Password)
	if err != nil || cred.Source != CredentialInline || cred.Inline != "env:literal" {
		t.Errorf("inline: escape parsed as %+v, %v; want inline secret env:literal", cred, err)
	}
	if s := cred.String(); strings.Contains(s, "literal") {
		t.Errorf("Credential.String() = %q reveals the secret", s)
	}
}

func TestDecodeOversized(t *testing.T) {
	_, err := Decode(make([]byte, MaxManifestBytes+1))
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("Decode(oversized) = %v, want a size-limit error", err)
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"connections": KindConnection, "Connection": KindConnection, "identity": KindIdentity, "ids": KindIdentity, "policies": KindPolicy} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKind("review"); err == nil {
		t.Error("ParseKind(review) succeeded, want an error")
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/manifests/*")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, manifest []byte) {
		docs, err := Decode(manifest)
		if err != nil {
			if docs != nil {
				t.Fatal("documents returned with an error")
			}
			return
		}
		for _, d := range docs {
			held := 0
			for _, r := range []bool{d.Identity != nil, d.Connection != nil, d.Policy != nil} {
				if r {
					held++
				}
			}
			if held != 1 {
				t.Fatalf("document %+v must hold exactly one resource", d)
			}
			if err := ValidateName("name", d.Name); err != nil {
				t.Fatalf("accepted document with invalid name: %v", err)
			}
		}
	})
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/manifests", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
