package sqlparse

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// Classifier classifies PostgreSQL text through a bounded cache. It is safe
// for concurrent use.
type Classifier struct {
	mu    sync.RWMutex
	cache map[string]*Result
	max   int
	keys  sync.Pool // *[]byte scratch for cache keys
}

// maxCachedText bounds the texts kept in the cache; longer ones are
// classified each time.
const maxCachedText = 8 << 10

// NewClassifier returns a classifier caching up to entries results.
func NewClassifier(entries int) *Classifier {
	return &Classifier{cache: make(map[string]*Result, min(entries, 1024)), max: entries,
		keys: sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}}
}

// Classify returns the classification of PostgreSQL text. The result is
// shared and must not be modified. With legacyStrings (the server's
// standard_conforming_strings is off, so a backslash in a plain string
// literal escapes the quote), text holding a backslash is UNKNOWN: the
// parser reads literals the standard way and could be misled.
func (c *Classifier) Classify(text string, legacyStrings bool) *Result {
	if legacyStrings && strings.IndexByte(text, '\\') >= 0 {
		return unknownResult("standard_conforming_strings is off and the text holds a backslash")
	}
	if len(text) > maxCachedText {
		return Postgres(text)
	}
	bp := c.keys.Get().(*[]byte)
	defer c.keys.Put(bp)
	key, ok := cacheKey((*bp)[:0], text)
	*bp = key[:0]
	var r *Result
	c.mu.RLock()
	if ok {
		r = c.cache[string(key)]
	} else {
		r = c.cache[text]
	}
	c.mu.RUnlock()
	if r != nil {
		return r
	}
	r = Postgres(text)
	k := text
	if ok {
		k = string(key)
	}
	c.mu.Lock()
	if len(c.cache) >= c.max {
		clear(c.cache)
	}
	c.cache[k] = r
	c.mu.Unlock()
	return r
}

// Len reports the number of cached entries.
func (c *Classifier) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.cache)
}

// cacheKey writes text with its plain literals replaced into dst: numbers
// become 0 and 'strings' become ”. It reports false, leaving the text to be
// its own key, when the text holds anything whose lexing it does not follow
// exactly (comments, quoted identifiers, dollar quotes, backslashes,
// prefixed strings such as E'…'), so two texts share a key only when they
// differ in the values of plain literals, which never change a
// classification.
//
// A rewritten key starts with a NUL byte, which PostgreSQL text never holds,
// so it cannot equal a text used as its own key.
func cacheKey(dst []byte, text string) ([]byte, bool) {
	if !utf8.ValidString(text) {
		return dst, false // the parser refuses it: UNKNOWN whatever the literals hold
	}
	replaced := false
	dst = append(dst, 0)
	n := len(text)
	for i := 0; i < n; i++ {
		ch := text[i]
		switch {
		case ch == '"' || ch == '$' || ch == '\\':
			return dst, false
		case ch == '-' && i+1 < n && text[i+1] == '-', ch == '/' && i+1 < n && text[i+1] == '*':
			return dst, false
		case ch == '\'':
			if i > 0 && !literalMayFollow(text[i-1]) {
				return dst, false // E'…', B'…', X'…', U&'…', N'…'
			}
			end := stringEnd(text, i)
			if end < 0 {
				return dst, false
			}
			dst = append(dst, '\'', '\'')
			i, replaced = end, true
		case ch >= '0' && ch <= '9':
			if i > 0 && !literalMayFollow(text[i-1]) {
				if isIdentChar(text[i-1]) || text[i-1] == '.' {
					dst = append(dst, ch) // part of a name such as t1
					continue
				}
				return dst, false
			}
			end, ok := numberEnd(text, i)
			if !ok {
				return dst, false
			}
			dst = append(dst, '0')
			i, replaced = end, true
		default:
			dst = append(dst, ch)
		}
	}
	return dst, replaced
}

// literalMayFollow reports whether a literal may start right after c
// without being part of a longer token.
func literalMayFollow(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '(', ',', '=', '<', '>', '+', '-', '*', '/', '%', '|', ';', '[':
		return true
	}
	return false
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// stringEnd returns the index of the quote closing the plain string that
// starts at text[start], or -1.
func stringEnd(text string, start int) int {
	for i := start + 1; i < len(text); i++ {
		if text[i] != '\'' {
			continue
		}
		if i+1 < len(text) && text[i+1] == '\'' {
			i++ // a doubled quote
			continue
		}
		return i
	}
	return -1
}

// numberEnd returns the index of the last byte of the decimal number
// starting at text[start]: digits, an optional fraction and an optional
// exponent. It reports false when a letter, '_', '.' or quote follows, which
// would make it part of a longer token (0x1F, 1_000, 1e, 1.2.3).
func numberEnd(text string, start int) (int, bool) {
	i := start
	digits := func() {
		for i < len(text) && text[i] >= '0' && text[i] <= '9' {
			i++
		}
	}
	digits()
	if i < len(text) && text[i] == '.' {
		i++
		digits()
	}
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		j := i + 1
		if j < len(text) && (text[j] == '+' || text[j] == '-') {
			j++
		}
		if j < len(text) && text[j] >= '0' && text[j] <= '9' {
			i = j
			digits()
		}
	}
	if i < len(text) && (isIdentChar(text[i]) || text[i] == '.' || text[i] == '\'') {
		return 0, false
	}
	return i - 1, true
}
