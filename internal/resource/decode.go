package resource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxManifestBytes bounds the size of one apply request.
const MaxManifestBytes = 4 << 20

// Document is one decoded document of a manifest.
type Document struct {
	Kind Kind
	Name string
	// Line is where the document starts in the manifest (1-based).
	Line int

	Identity   *Identity
	Connection *Connection
	Policy     *Policy
}

// DecodeError is a manifest error tied to a line.
type DecodeError struct {
	Line int
	Msg  string
}

func (e *DecodeError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Decode parses a manifest of one or more YAML (or JSON) documents separated
// by "---", validates each, and rejects duplicates. It returns either every
// document or an error; never a partial result.
func Decode(manifest []byte) ([]Document, error) {
	if len(manifest) > MaxManifestBytes {
		return nil, &DecodeError{Msg: fmt.Sprintf("manifest is %d bytes, larger than the %d-byte limit", len(manifest), MaxManifestBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(manifest))
	var docs []Document
	seen := map[string]int{}
	for {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(err)
		}
		if len(root.Content) == 0 {
			continue // an empty document, e.g. a trailing "---"
		}
		doc, err := decodeDocument(root.Content[0])
		if err != nil {
			return nil, err
		}
		if doc == nil {
			continue // a document holding only null
		}
		key := string(doc.Kind) + "/" + doc.Name
		if first, dup := seen[key]; dup {
			return nil, &DecodeError{Line: doc.Line, Msg: fmt.Sprintf("duplicate %s %q (first defined on line %d)", doc.Kind, doc.Name, first)}
		}
		seen[key] = doc.Line
		docs = append(docs, *doc)
	}
	if len(docs) == 0 {
		return nil, &DecodeError{Msg: "manifest holds no documents"}
	}
	return docs, nil
}

func decodeDocument(n *yaml.Node) (*Document, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, &DecodeError{Line: n.Line, Msg: "document is not a mapping (want kind: ..., name: ...)"}
	}
	kindNode := mappingValue(n, "kind")
	if kindNode == nil {
		return nil, &DecodeError{Line: n.Line, Msg: "document has no kind (want kind: Identity, Connection or Policy)"}
	}
	if v := mappingValue(n, "apiVersion"); v != nil && v.Value != APIVersion {
		return nil, &DecodeError{Line: v.Line, Msg: fmt.Sprintf("apiVersion %q is not supported (want %s)", v.Value, APIVersion)}
	}
	doc := &Document{Kind: Kind(kindNode.Value), Line: n.Line}
	var target any
	switch doc.Kind {
	case KindIdentity:
		doc.Identity = &Identity{}
		target = doc.Identity
	case KindConnection:
		if v := mappingValue(n, "allow"); v != nil {
			return nil, &DecodeError{Line: v.Line, Msg: "Connection: allow lists were replaced by access rules: write a Policy whose rule blocks or allows command.type == \"connect\" (see docs/policy.md)"}
		}
		doc.Connection = &Connection{}
		target = doc.Connection
	case KindPolicy:
		doc.Policy = &Policy{}
		target = doc.Policy
	default:
		return nil, &DecodeError{Line: kindNode.Line, Msg: fmt.Sprintf("unknown kind %q (known kinds: Identity, Connection, Policy)", kindNode.Value)}
	}
	if err := checkKnownFields(n, reflect.TypeOf(target).Elem(), string(doc.Kind), "kind", "apiVersion"); err != nil {
		return nil, err
	}
	if err := n.Decode(target); err != nil {
		return nil, yamlError(err)
	}
	var err error
	switch doc.Kind {
	case KindIdentity:
		doc.Name, err = doc.Identity.Name, doc.Identity.Validate()
	case KindConnection:
		doc.Connection.PasswordSet = mappingValue(n, "password") != nil
		doc.Name, err = doc.Connection.Name, doc.Connection.Validate()
	case KindPolicy:
		ruleLines(n, doc.Policy)
		doc.Name, err = doc.Policy.Name, doc.Policy.Validate()
	}
	if err != nil {
		return nil, &DecodeError{Line: n.Line, Msg: fmt.Sprintf("%s: %v", doc.Kind, err)}
	}
	return doc, nil
}

// ruleLines records where each rule's condition sits in the manifest.
func ruleLines(n *yaml.Node, p *Policy) {
	rules := mappingValue(n, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode {
		return
	}
	for i, r := range rules.Content {
		if i >= len(p.Rules) {
			return
		}
		p.Rules[i].Line = r.Line
		if w := mappingValue(r, "when"); w != nil {
			p.Rules[i].Line = w.Line
		}
	}
}

// APIVersion is the optional apiVersion a document may carry.
const APIVersion = "gatehouse.dev/v1"

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// checkKnownFields rejects keys that t has no yaml field for, naming the
// line, so a misspelt "pasword" is an error instead of a silently empty
// credential. yaml.v3 offers this only on a Decoder, which loses the
// stream's line numbers for documents after the first.
func checkKnownFields(n *yaml.Node, t reflect.Type, where string, extra ...string) error {
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	for _, e := range extra {
		fields[e] = nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			return &DecodeError{Line: k.Line, Msg: fmt.Sprintf("unknown field %q in %s", k.Value, where)}
		}
		if ft != nil && ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft != nil && ft.Kind() == reflect.Struct && ft.PkgPath() == t.PkgPath() {
			if err := checkKnownFields(v, ft, where+"."+k.Value); err != nil {
				return err
			}
		}
		if ft != nil && ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && v.Kind == yaml.SequenceNode {
			for j, item := range v.Content {
				if err := checkKnownFields(item, ft.Elem(), fmt.Sprintf("%s.%s[%d]", where, k.Value, j)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// yamlError turns a yaml.v3 error, whose text starts "yaml: line N: ...",
// into a DecodeError carrying the line.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	var line int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		_, rest, _ := strings.Cut(msg, ":")
		return &DecodeError{Line: line, Msg: strings.TrimSpace(rest)}
	}
	return &DecodeError{Msg: msg}
}
