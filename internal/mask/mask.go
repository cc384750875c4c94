// Package mask finds sensitive values in text and replaces them. A Scanner
// runs validating detectors (email, payment card with Luhn and IIN ranges,
// US SSN, IBAN with mod-97, phone, IPv4, IPv6, AWS keys, JWT, PEM private
// keys, opt-in high-entropy tokens, custom RE2 patterns) in one pass over
// a value, allocating nothing for a value without matches. A Masker
// rewrites what was found by a Strategy: a label, the last characters
// only, a keyed hash that stays equal for equal inputs, or NULL.
package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
)

// Strategy is how a found value is replaced.
type Strategy uint8

// Strategies.
const (
	// Redact replaces the value with a label: "[email]", or Action.Label.
	Redact Strategy = iota + 1
	// Partial keeps the last Action.Keep letters and digits, masking the
	// others with '*' and keeping separators: ****-****-****-1111.
	Partial
	// Hash replaces the value with a keyed HMAC-SHA256, the same for the
	// same value under one gateway key, so joins and GROUP BY still line
	// up: "hash:" and 16 hex digits.
	Hash
	// Null makes the whole column value NULL.
	Null
)

var strategyNames = [...]string{Redact: "redact", Partial: "partial", Hash: "hash", Null: "null"}

func (s Strategy) String() string {
	if s > 0 && int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "unknown"
}

// ParseStrategy returns the strategy of a name.
func ParseStrategy(name string) (Strategy, error) {
	for s := Redact; int(s) < len(strategyNames); s++ {
		if strategyNames[s] == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown masking strategy %q (use redact, partial, hash or null)", name)
}

// Action says how to mask.
type Action struct {
	Strategy Strategy
	// Keep is how many trailing letters and digits Partial keeps
	// (default 4).
	Keep int
	// Label replaces Redact's "[detector]".
	Label string
}

// Masker applies actions. It is safe for concurrent use.
type Masker struct {
	key  []byte
	macs sync.Pool
}

// NewMasker masks with key for Hash; the key should be the gateway's own
// secret, so hashes cannot be reversed by guessing inputs elsewhere.
func NewMasker(key []byte) *Masker {
	m := &Masker{key: append([]byte(nil), key...)}
	m.macs.New = func() any { return hmac.New(sha256.New, m.key) }
	return m
}

// Apply appends v to dst with each match replaced per a; null reports that
// the whole value must become NULL instead (Null strategy). With no
// matches it appends v unchanged.
func (m *Masker) Apply(dst, v []byte, matches []Match, a Action) (out []byte, null bool) {
	if len(matches) > 0 && a.Strategy == Null {
		return dst, true
	}
	at := 0
	for _, mt := range matches {
		dst = append(dst, v[at:mt.Start]...)
		dst = m.replace(dst, v[mt.Start:mt.End], mt.Detector.String(), a)
		at = mt.End
	}
	return append(dst, v[at:]...), false
}

// Whole appends the replacement of an entire value (a column rule) to
// dst; null as for Apply.
func (m *Masker) Whole(dst, v []byte, name string, a Action) (out []byte, null bool) {
	if a.Strategy == Null {
		return dst, true
	}
	return m.replace(dst, v, name, a), false
}

func (m *Masker) replace(dst, v []byte, name string, a Action) []byte {
	switch a.Strategy {
	case Partial:
		keep := a.Keep
		if keep == 0 {
			keep = 4
		}
		alnum := 0
		for _, c := range v {
			if isAlnum(c) {
				alnum++
			}
		}
		for _, c := range v {
			if isAlnum(c) {
				if alnum > keep {
					c = '*'
				}
				alnum--
			}
			dst = append(dst, c)
		}
		return dst
	case Hash:
		mac := m.macs.Get().(hash.Hash)
		mac.Reset()
		mac.Write(v)
		var sum [sha256.Size]byte
		mac.Sum(sum[:0])
		m.macs.Put(mac)
		dst = append(dst, "hash:"...)
		return hex.AppendEncode(dst, sum[:8])
	default:
		if a.Label != "" {
			return append(dst, a.Label...)
		}
		dst = append(dst, '[')
		dst = append(dst, name...)
		return append(dst, ']')
	}
}

func isAlnum(c byte) bool { return class[c]&(cDigit|cUpper|cLower) != 0 }
