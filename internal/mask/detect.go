package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math"
	"regexp"
)

// Detector names a kind of sensitive value the scanner recognises.
type Detector uint8

// Detectors. Each validates what it finds (checksums, number ranges,
// structure), so look-alikes are left alone.
const (
	Email     Detector = iota + 1 // local@domain.tld, not userinfo in a URL
	Card                          // 13–19 digits, Luhn-valid, in a major network's IIN range
	SSN                           // US SSN ddd-dd-dddd with a valid area, group and serial
	IBAN                          // country, check digits, BBAN of the country's length; mod-97
	Phone                         // international +CC… or NANP (NXX) NXX-XXXX
	IPv4                          // dotted quad, each part 0–255
	IPv6                          // hex groups with colons, at most one ::
	AWSKeyID                      // AKIA/ASIA/… and 16 more
	AWSSecret                     // 40 characters of base64 with upper, lower and digits
	JWT                           // three base64url parts, a JSON header with "alg"
	PEMKey                        // -----BEGIN … PRIVATE KEY----- through its END line
	Entropy                       // generic high-entropy token (opt-in)
	Custom                        // a configured RE2 pattern
	numDetectors
)

var detectorNames = [...]string{Email: "email", Card: "card", SSN: "ssn", IBAN: "iban", Phone: "phone",
	IPv4: "ipv4", IPv6: "ipv6", AWSKeyID: "aws_key_id", AWSSecret: "aws_secret", JWT: "jwt", PEMKey: "pem_private_key",
	Entropy: "entropy", Custom: "custom"}

func (d Detector) String() string {
	if d > 0 && d < numDetectors {
		return detectorNames[d]
	}
	return "unknown"
}

// DetectorNames lists the built-in detectors' names.
func DetectorNames() []string {
	out := make([]string, 0, numDetectors)
	for d := Detector(1); d < Custom; d++ {
		out = append(out, d.String())
	}
	return out
}

// ParseDetector returns the detector of a name.
func ParseDetector(name string) (Detector, bool) {
	for d := Detector(1); d < numDetectors; d++ {
		if detectorNames[d] == name {
			return d, true
		}
	}
	return 0, false
}

// Set is a set of detectors.
type Set uint32

// Has reports whether d is in the set.
func (s Set) Has(d Detector) bool { return s&(1<<d) != 0 }

// With returns the set with d added.
func (s Set) With(d Detector) Set { return s | 1<<d }

// Default is every built-in detector except the opt-in Entropy.
const Default = Set(1<<Email | 1<<Card | 1<<SSN | 1<<IBAN | 1<<Phone | 1<<IPv4 | 1<<IPv6 |
	1<<AWSKeyID | 1<<AWSSecret | 1<<JWT | 1<<PEMKey)

// Match is a detected span of a value.
type Match struct {
	Start, End int
	Detector   Detector
	// Pattern is the index of the custom pattern, for Custom.
	Pattern int
}

// Scanner finds sensitive values. It is safe for concurrent use, and
// Find allocates nothing unless dst must grow.
type Scanner struct {
	set    Set
	custom []*regexp.Regexp
}

// NewScanner scans for the detectors in set and for custom RE2 patterns.
func NewScanner(set Set, custom ...*regexp.Regexp) *Scanner {
	if len(custom) > 0 {
		set = set.With(Custom)
	}
	return &Scanner{set: set, custom: custom}
}

// Character classes of the scan's first pass.
const (
	cOther  uint8 = 0
	cDigit  uint8 = 1 << 0
	cUpper  uint8 = 1 << 1
	cLower  uint8 = 1 << 2
	cLocal  uint8 = 1 << 3 // allowed in an email's local part
	cDomain uint8 = 1 << 4 // allowed in a domain
	cB64    uint8 = 1 << 5 // base64 (standard or URL-safe) alphabet, '=' included
	cHex    uint8 = 1 << 6
	cTrig   uint8 = 1 << 7 // starts something only its own check can tell: @ + ( - :
)

var class [256]uint8

func init() {
	for c := 0; c < 256; c++ {
		var k uint8
		switch {
		case c >= '0' && c <= '9':
			k = cDigit | cLocal | cDomain | cB64 | cHex
		case c >= 'A' && c <= 'Z':
			k = cUpper | cLocal | cDomain | cB64
			if c <= 'F' {
				k |= cHex
			}
		case c >= 'a' && c <= 'z':
			k = cLower | cLocal | cDomain | cB64
			if c <= 'f' {
				k |= cHex
			}
		}
		switch c {
		case '.', '_', '%', '+', '-':
			k |= cLocal
		}
		switch c {
		case '.', '-':
			k |= cDomain
		}
		switch c {
		case '+', '/', '=', '_', '-':
			k |= cB64
		}
		switch c {
		case '@', '+', '(', '-', ':':
			k |= cTrig
		}
		class[c] = k
	}
}

var wordChar [256]bool

func init() {
	for c := range wordChar {
		wordChar[c] = class[c]&(cDigit|cUpper|cLower) != 0 || c == '_'
	}
}

func isWord(c byte) bool { return wordChar[c] }

// Find appends the sensitive spans of v to dst, in order and without
// overlaps.
func (s *Scanner) Find(v []byte, dst []Match) []Match {
	start := len(dst)
	n := len(v)
	if !maybeSensitive(v) {
		n = 0 // nothing a built-in detector could find; custom patterns still run
	}
	for i := 0; i < n; {
		c := v[i]
		k := class[c]
		if k == cOther {
			i++
			continue
		}
		if k&cTrig != 0 && k&(cDigit|cUpper|cLower) == 0 {
			from, end, d := s.trigger(v, i)
			if d == 0 && c == '+' && (i == 0 || class[v[i-1]]&cB64 == 0 || v[i-1] == '=') {
				// Not a phone number: maybe a secret starting with '+'.
				end, d = s.token(v, i)
			}
			if d != 0 {
				dst = s.add(dst, start, from, end, d)
			}
			i = max(end, i+1) // past a match, or past what is certainly none
			continue
		}
		// A run of word characters (and the separators numbers and
		// tokens use) starting at a boundary.
		if i > 0 && isWord(v[i-1]) {
			i++
			continue
		}
		// Fast paths for what most values are made of: a lower-case or
		// capitalised word, or a short number, followed by a character that cannot continue
		// anything (a space before a letter, punctuation, the end).
		if c-'a' < 26 || c-'A' < 26 && i+1 < n && v[i+1]-'a' < 26 {
			j := i + 1
			for j < n && v[j]-'a' < 26 {
				j++
			}
			if j == n || class[v[j]]&cB64 == 0 && v[j] != ':' && v[j] != '@' {
				i = j
				continue
			}
		} else if k&cDigit != 0 {
			j := i + 1
			for j < n && v[j]-'0' < 10 {
				j++
			}
			if end := dateOrTime(v, i, j); end > 0 {
				i = end
				continue
			}
			if j-i < 13 && (j == n || class[v[j]]&cB64 == 0 && v[j] != ':' && v[j] != '@' && v[j] != ' ' && v[j] != '.') {
				i = j
				continue
			}
		}
		end, d := s.token(v, i)
		if d != 0 {
			dst = s.add(dst, start, i, end, d)
		}
		i = max(end, i+1)
	}
	if s.set.Has(Custom) {
		for p, re := range s.custom {
			for _, loc := range re.FindAllIndex(v, -1) {
				if loc[1] > loc[0] {
					dst = insert(dst, start, Match{Start: loc[0], End: loc[1], Detector: Custom, Pattern: p})
				}
			}
		}
	}
	return dst
}

// dateOrTime returns the end of a date (dddd-dd-dd) or a time of day
// (dd:dd:dd) starting at i, whose first digits end at j, when nothing
// continues it; 0 otherwise. Timestamps fill result rows, and neither can
// be any detector's match.
func dateOrTime(v []byte, i, j int) int {
	digit := func(k int) bool { return k < len(v) && v[k]-'0' < 10 }
	var end int
	switch {
	case j-i == 4 && j+6 <= len(v) && v[j] == '-' && digit(j+1) && digit(j+2) && v[j+3] == '-' && digit(j+4) && digit(j+5):
		end = j + 6
	case j-i == 2 && j+6 <= len(v) && v[j] == ':' && digit(j+1) && digit(j+2) && v[j+3] == ':' && digit(j+4) && digit(j+5):
		end = j + 6
	default:
		return 0
	}
	if end < len(v) && (isWord(v[end]) || v[end] == ':' || v[end] == '-' || v[end] == '@') {
		return 0
	}
	return end
}

// maybeSensitive is a first pass over a value: every built-in detector
// needs a digit, an upper-case letter (AWS key ids, IBANs, JWTs), or one of
// @ + ( - : (its trigger). Lower-case text without them (most words and
// sentences) is skipped eight bytes at a time.
func maybeSensitive(v []byte) bool {
	i := 0
	for ; i+8 <= len(v); i += 8 {
		if swarInteresting(binary.LittleEndian.Uint64(v[i:])) {
			return true
		}
	}
	for ; i < len(v); i++ {
		if class[v[i]]&(cDigit|cUpper|cTrig) != 0 {
			return true
		}
	}
	return false
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// swarInteresting reports whether any of eight ASCII bytes is in 0x30–0x3A
// (digits, ':') or 0x40–0x5A ('@', A–Z), or is '+', '(' or '-'. Bytes from
// 0x80 up (UTF-8) are never interesting.
func swarInteresting(x uint64) bool {
	ascii := ^x & highs
	low := x &^ highs
	// Bit 7 of each byte set where m < byte < n (bytes < 0x80).
	between := func(m, n uint64) uint64 {
		return (ones*(127+n) - low) & (low + ones*(127-m)) & ascii
	}
	zero := func(y uint64) uint64 { return (y - ones) &^ y & highs }
	return between(0x30-1, 0x3A+1)|between(0x40-1, 0x5A+1)|zero(x^(ones*'+'))|zero(x^(ones*'('))|zero(x^(ones*'-')) != 0
}

// add appends a match, dropping it if it overlaps the previous one; an
// email found at its @ replaces tokens of its local part.
func (s *Scanner) add(dst []Match, start int, from, end int, d Detector) []Match {
	for len(dst) > start && dst[len(dst)-1].End > from {
		if dst[len(dst)-1].Start >= from {
			dst = dst[:len(dst)-1]
			continue
		}
		return dst
	}
	return append(dst, Match{Start: from, End: end, Detector: d})
}

// insert adds a custom match in order, unless it overlaps one found.
func insert(dst []Match, start int, m Match) []Match {
	i := len(dst)
	for i > start && dst[i-1].Start >= m.Start {
		i--
	}
	if (i > start && dst[i-1].End > m.Start) || (i < len(dst) && dst[i].Start < m.End) {
		return dst
	}
	dst = append(dst, Match{})
	copy(dst[i+1:], dst[i:])
	dst[i] = m
	return dst
}

// trigger checks the detectors a punctuation character can start: an
// email at '@' (looking back for its local part), a phone number at '+' or
// '(', a PEM block at '-', an IPv6 address at ':' ("::1").
func (s *Scanner) trigger(v []byte, i int) (from, end int, d Detector) {
	switch v[i] {
	case '@':
		if s.set.Has(Email) {
			if from, end, ok := email(v, i); ok {
				return from, end, Email
			}
		}
	case '+', '(':
		if s.set.Has(Phone) && (i == 0 || !isWord(v[i-1])) {
			if end, ok := phone(v, i); ok {
				return i, end, Phone
			}
		}
	case '-':
		if bytes.HasPrefix(v[i:], pemBegin) {
			end, private := pem(v, i)
			if private && s.set.Has(PEMKey) {
				return i, end, PEMKey
			}
			// A certificate or public key: its base64 is no secret token.
			return i, end, 0
		}
	case ':':
		if s.set.Has(IPv6) && i+1 < len(v) && v[i+1] == ':' && (i == 0 || class[v[i-1]]&cHex == 0 && v[i-1] != ':') {
			if end, ok := ipv6(v, i); ok {
				return i, end, IPv6
			}
		}
	}
	return i, i + 1, 0
}

// email checks for an address around the '@' at at, returning its span.
func email(v []byte, at int) (from, end int, ok bool) {
	from = at
	for from > 0 && class[v[from-1]]&cLocal != 0 {
		from--
	}
	if from == at || v[from] == '.' || v[at-1] == '.' {
		return 0, 0, false
	}
	// The userinfo of a URL (scheme://user@host, user:pass@host) is not an
	// address.
	if from >= 2 && v[from-1] == '/' && v[from-2] == '/' || from >= 1 && v[from-1] == ':' && !(from >= 7 && bytes.EqualFold(v[from-7:from-1], mailto)) {
		return 0, 0, false
	}
	end = at + 1
	for end < len(v) && class[v[end]]&cDomain != 0 {
		if v[end] == '.' && (end == at+1 || v[end-1] == '.') {
			break
		}
		end++
	}
	for end > at+1 && (v[end-1] == '.' || v[end-1] == '-') {
		end--
	}
	if end < len(v) && v[end] == '@' {
		return 0, 0, false
	}
	domain := v[at+1 : end]
	dot := bytes.LastIndexByte(domain, '.')
	if dot <= 0 || len(domain)-dot-1 < 2 {
		return 0, 0, false
	}
	for _, c := range domain[dot+1:] {
		if class[c]&(cUpper|cLower) == 0 {
			return 0, 0, false
		}
	}
	return from, end, true
}

// token checks the detectors a word can start at a boundary: numbers
// (card, SSN, phone, IPv4), IPv6, IBAN, AWS key ids and secrets, JWTs and
// high-entropy tokens. A word that is none of them returns its end, so the
// scan skips it whole.
func (s *Scanner) token(v []byte, i int) (int, Detector) {
	c := v[i]
	// One pass finds the word proper (letters, digits, underscore) and
	// the base64 run around it ('=' only as padding, below).
	w, t := -1, i
	var seen uint8
	for t < len(v) {
		if v[t]-'a' < 26 { // the common case, lower-case letters
			seen |= cLower
			t++
			continue
		}
		k := class[v[t]]
		if k&cB64 == 0 || v[t] == '=' {
			break
		}
		if w < 0 && k&(cDigit|cUpper|cLower) == 0 && v[t] != '_' {
			w = t
		}
		seen |= k
		t++
	}
	if w < 0 {
		w = t
	}
	if w < len(v) && v[w] == ':' && w-i <= 4 && s.set.Has(IPv6) && allHex(v[i:w]) {
		if end, ok := ipv6(v, i); ok {
			return end, IPv6
		}
	}
	if class[c]&cDigit != 0 {
		if end, d := s.number(v, i); d != 0 {
			return end, d
		}
	}
	if class[c]&cUpper != 0 {
		if s.set.Has(IBAN) && w-i >= 4 {
			if end, ok := iban(v, i); ok {
				return end, IBAN
			}
		}
		if s.set.Has(AWSKeyID) && w-i == 20 && awsKeyID(v[i:w]) {
			return w, AWSKeyID
		}
	}
	if c == 'e' && s.set.Has(JWT) && bytes.HasPrefix(v[i:], jwtPrefix) {
		if end, ok := jwt(v, i); ok {
			return end, JWT
		}
	}
	// Secrets mix upper case, lower case and digits.
	if t-i >= 20 && seen&(cUpper|cLower|cDigit) == cUpper|cLower|cDigit && (s.set.Has(AWSSecret) || s.set.Has(Entropy)) {
		for t < len(v) && v[t] == '=' {
			t++
		}
		tok := v[i:t]
		if s.set.Has(AWSSecret) && len(tok) == 40 && awsSecret(tok) {
			return t, AWSSecret
		}
		if s.set.Has(Entropy) && highEntropy(tok) {
			return t, Entropy
		}
	}
	return w, 0
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if class[c]&cDigit == 0 {
			return false
		}
	}
	return true
}

func allHex(b []byte) bool {
	for _, c := range b {
		if class[c]&cHex == 0 {
			return false
		}
	}
	return len(b) > 0
}

// number reads a run of digit groups from i and tells what it is.
func (s *Scanner) number(v []byte, i int) (int, Detector) {
	var groups [8]int
	ng, digits := 0, 0
	var sep byte
	mixed := false
	j := i
	for {
		g := j
		for j < len(v) && class[v[j]]&cDigit != 0 {
			j++
		}
		if ng < len(groups) {
			groups[ng] = j - g
		}
		ng++
		digits += j - g
		if j+1 < len(v) && (v[j] == ' ' || v[j] == '-' || v[j] == '.') && class[v[j+1]]&cDigit != 0 {
			if sep == 0 {
				sep = v[j]
			} else if sep != v[j] {
				mixed = true
			}
			j++
			continue
		}
		break
	}
	end := j
	if end < len(v) && (isWord(v[end]) || v[end] == '@') || ng > len(groups) {
		return end, 0
	}
	gs := groups[:ng]
	switch {
	case s.set.Has(IPv4) && sep == '.' && !mixed && ng == 4 && ipv4(v[i:end]) && (i == 0 || v[i-1] != '.') &&
		!(end+1 < len(v) && v[end] == '.' && class[v[end+1]]&cDigit != 0):
		return end, IPv4
	case s.set.Has(SSN) && (sep == '-' || sep == ' ') && !mixed && ng == 3 && gs[0] == 3 && gs[1] == 2 && gs[2] == 4 && ssn(v[i:end]):
		return end, SSN
	case s.set.Has(Phone) && !mixed && sep != 0 && nanp(v[i:end], gs):
		return end, Phone
	case s.set.Has(Card) && !mixed && sep != '.' && digits >= 13 && digits <= 19 && (sep == 0 || cardGroups(gs)) && card(v[i:end], digits):
		return end, Card
	}
	return end, 0
}

func ipv4(b []byte) bool {
	part, n := 0, 0
	for k, c := range b {
		if c == '.' {
			if n == 0 || part > 255 {
				return false
			}
			part, n = 0, 0
			continue
		}
		if n == 1 && part == 0 { // leading zero
			return false
		}
		part = part*10 + int(c-'0')
		n++
		if n > 3 {
			return false
		}
		_ = k
	}
	return n > 0 && part <= 255
}

func ssn(b []byte) bool {
	d := func(k int) int { return int(b[k] - '0') }
	area := d(0)*100 + d(1)*10 + d(2)
	group := d(4)*10 + d(5)
	serial := d(7)*1000 + d(8)*100 + d(9)*10 + d(10)
	return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

// nanp: a North American number, NXX-NXX-XXXX (or with a leading 1).
func nanp(b []byte, gs []int) bool {
	switch {
	case len(gs) == 3 && gs[0] == 3 && gs[1] == 3 && gs[2] == 4:
		return b[0] >= '2' && b[4] >= '2'
	case len(gs) == 4 && gs[0] == 1 && b[0] == '1' && gs[1] == 3 && gs[2] == 3 && gs[3] == 4:
		return b[2] >= '2' && b[6] >= '2'
	}
	return false
}

// cardGroups accepts the groupings cards are written in: fours (the last
// group 1–4), Amex 4-6-5, Diners 4-6-4.
func cardGroups(gs []int) bool {
	if len(gs) == 3 && gs[0] == 4 && gs[1] == 6 && (gs[2] == 5 || gs[2] == 4) {
		return true
	}
	for k, g := range gs {
		if g != 4 && !(k == len(gs)-1 && g >= 1 && g <= 4) {
			return false
		}
	}
	return len(gs) >= 4
}

// card checks the Luhn digit and a major network's IIN range and length.
func card(b []byte, n int) bool {
	var ds [19]byte
	k := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			ds[k] = c - '0'
			k++
		}
	}
	sum := 0
	for j := 0; j < n; j++ {
		x := int(ds[n-1-j])
		if j%2 == 1 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	if sum%10 != 0 {
		return false
	}
	p := func(m int) int {
		r := 0
		for j := 0; j < m; j++ {
			r = r*10 + int(ds[j])
		}
		return r
	}
	switch {
	case ds[0] == 4:
		return n == 13 || n == 16 || n == 19 // Visa
	case p(2) >= 51 && p(2) <= 55, p(4) >= 2221 && p(4) <= 2720:
		return n == 16 // Mastercard
	case p(2) == 34 || p(2) == 37:
		return n == 15 // American Express
	case p(4) == 6011, p(3) >= 644 && p(3) <= 649, p(2) == 65:
		return n >= 16 && n <= 19 // Discover
	case p(4) >= 3528 && p(4) <= 3589:
		return n >= 16 && n <= 19 // JCB
	case p(3) >= 300 && p(3) <= 305, p(2) == 36, p(2) == 38, p(2) == 39:
		return n >= 14 && n <= 19 // Diners Club
	case p(2) == 62:
		return n >= 16 && n <= 19 // UnionPay
	}
	return false
}

// ibanLengths are the IBAN lengths of the countries recognised.
var ibanLengths = map[[2]byte]int{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'T'}: 20, {'B', 'E'}: 16, {'B', 'G'}: 22, {'B', 'R'}: 29, {'C', 'H'}: 21,
	{'C', 'Y'}: 28, {'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'K'}: 18, {'E', 'E'}: 20, {'E', 'S'}: 24, {'F', 'I'}: 18,
	{'F', 'R'}: 27, {'G', 'B'}: 22, {'G', 'R'}: 27, {'H', 'R'}: 21, {'H', 'U'}: 28, {'I', 'E'}: 22, {'I', 'L'}: 23,
	{'I', 'S'}: 26, {'I', 'T'}: 27, {'L', 'I'}: 21, {'L', 'T'}: 20, {'L', 'U'}: 20, {'L', 'V'}: 21, {'M', 'C'}: 27,
	{'M', 'T'}: 31, {'N', 'L'}: 18, {'N', 'O'}: 15, {'P', 'L'}: 28, {'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24,
	{'S', 'A'}: 24, {'S', 'E'}: 24, {'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27, {'T', 'R'}: 26,
}

// iban reads an IBAN from i, written solid or in groups of four.
func iban(v []byte, i int) (int, bool) {
	if i+4 > len(v) || class[v[i+1]]&cUpper == 0 || class[v[i+2]]&cDigit == 0 || class[v[i+3]]&cDigit == 0 {
		return 0, false
	}
	want, ok := ibanLengths[[2]byte{v[i], v[i+1]}]
	if !ok {
		return 0, false
	}
	var buf [34]byte
	n, j := 0, i
	for j < len(v) && n < want {
		c := v[j]
		switch {
		case class[c]&(cUpper|cDigit) != 0:
			buf[n] = c
			n++
			j++
		case c == ' ' && n%4 == 0 && j+1 < len(v) && class[v[j+1]]&(cUpper|cDigit) != 0:
			j++
		default:
			return 0, false
		}
	}
	if n != want || j < len(v) && isWord(v[j]) {
		return 0, false
	}
	// mod-97 of the number with the first four characters moved last.
	rem := 0
	for k := 0; k < n; k++ {
		c := buf[(k+4)%n]
		if c >= 'A' {
			rem = (rem*100 + int(c-'A'+10)) % 97
		} else {
			rem = (rem*10 + int(c-'0')) % 97
		}
	}
	return j, rem == 1
}

var awsPrefixes = [][]byte{[]byte("AKIA"), []byte("ASIA"), []byte("AGPA"), []byte("AIDA"), []byte("AROA"),
	[]byte("ANPA"), []byte("ANVA"), []byte("AIPA"), []byte("ABIA"), []byte("ACCA")}

func awsKeyID(b []byte) bool {
	ok := false
	for _, p := range awsPrefixes {
		if bytes.HasPrefix(b, p) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, c := range b[4:] {
		if class[c]&(cUpper|cDigit) == 0 {
			return false
		}
	}
	return true
}

// awsSecret: 40 characters of standard base64 (no padding), with upper and
// lower case and digits, and the entropy of random data.
func awsSecret(b []byte) bool {
	var up, lo, dg bool
	for _, c := range b {
		k := class[c]
		switch {
		case k&cUpper != 0:
			up = true
		case k&cLower != 0:
			lo = true
		case k&cDigit != 0:
			dg = true
		case c == '/' || c == '+':
		default:
			return false
		}
	}
	return up && lo && dg && entropy(b) >= 4.2
}

// highEntropy: a token of 24–512 base64 characters mixing upper case,
// lower case and digits (so hex digests and codes in capitals stay), with
// at least 3.9 bits of entropy per character.
func highEntropy(b []byte) bool {
	if len(b) < 24 || len(b) > 512 {
		return false
	}
	var up, lo, dg bool
	for _, c := range b {
		k := class[c]
		up, lo, dg = up || k&cUpper != 0, lo || k&cLower != 0, dg || k&cDigit != 0
	}
	return up && lo && dg && entropy(b) >= 3.9
}

func entropy(b []byte) float64 {
	var counts [256]uint16
	for _, c := range b {
		counts[c]++
	}
	h, n := 0.0, float64(len(b))
	for _, k := range counts {
		if k > 0 {
			p := float64(k) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

var (
	jwtPrefix = []byte("eyJ")
	pemBegin  = []byte("-----BEGIN ")
	pemKey    = []byte("PRIVATE KEY-----")
	pemEnd    = []byte("-----END ")
	pemDashes = []byte("-----")
	algKey    = []byte(`"alg"`)
	mailto    = []byte("mailto")
)

// jwt reads header.payload.signature in base64url from i; the header must
// decode to JSON naming "alg".
func jwt(v []byte, i int) (int, bool) {
	var dots [2]int
	nd, j := 0, i
	for j < len(v) {
		c := v[j]
		if c == '.' {
			if nd == 2 || j == i || v[j-1] == '.' {
				break
			}
			dots[nd] = j
			nd++
		} else if class[c]&(cUpper|cLower|cDigit) == 0 && c != '-' && c != '_' {
			break
		}
		j++
	}
	if nd != 2 || j-dots[1] < 2 || dots[1]-dots[0] < 2 || j < len(v) && (v[j] == '=' || v[j] == '+' || v[j] == '/') {
		return 0, false
	}
	head := v[i:dots[0]]
	var buf [384]byte
	if base64.RawURLEncoding.DecodedLen(len(head)) > len(buf) {
		return 0, false
	}
	n, err := base64.RawURLEncoding.Decode(buf[:], head)
	if err != nil || n == 0 || buf[0] != '{' || !bytes.Contains(buf[:n], algKey) {
		return 0, false
	}
	return j, true
}

// pem reads a PEM block from its BEGIN line through its END line, or to
// the end of the value when it is cut short, and tells whether it holds a
// private key.
func pem(v []byte, i int) (end int, private bool) {
	line := v[i+len(pemBegin):]
	if nl := bytes.IndexByte(line, '\n'); nl >= 0 {
		line = line[:nl]
	}
	private = bytes.Contains(line, pemKey)
	rest := v[i+len(pemBegin):]
	k := bytes.Index(rest, pemEnd)
	if k < 0 {
		return len(v), private
	}
	e := rest[k+len(pemEnd):]
	if t := bytes.Index(e, pemDashes); t >= 0 && bytes.IndexByte(e[:t], '\n') < 0 {
		return len(v) - len(e) + t + len(pemDashes), private
	}
	return len(v) - len(e), private
}

// ipv6 reads an IPv6 address from i: up to eight groups of 1–4 hex digits
// separated by colons, at most one "::", optionally ending in a dotted
// IPv4 address.
func ipv6(v []byte, i int) (int, bool) {
	j, groups, colons, double := i, 0, 0, false
	for j < len(v) {
		g := j
		for j < len(v) && j-g < 5 && class[v[j]]&cHex != 0 {
			j++
		}
		if j-g == 5 {
			return 0, false
		}
		if j < len(v) && v[j] == '.' && j > g && allDigits(v[g:j]) && groups <= 6 && (double || groups == 6) {
			// An embedded IPv4 address ends it.
			e := g
			for e < len(v) && (class[v[e]]&cDigit != 0 || v[e] == '.') {
				e++
			}
			if ipv4(v[g:e]) && bytes.Count(v[g:e], []byte(".")) == 3 {
				j, groups = e, groups+2
				break
			}
			// Not an embedded IPv4 address: the '.' ends the sentence.
		}
		if j > g {
			groups++
		}
		if j < len(v) && v[j] == ':' {
			if j+1 < len(v) && v[j+1] == ':' {
				if double {
					return 0, false
				}
				double = true
				colons += 2
				j += 2
				continue
			}
			if j == g { // a lone colon after another
				break
			}
			colons++
			j++
			continue
		}
		break
	}
	if j > i && v[j-1] == ':' && !(j >= 2 && v[j-2] == ':') {
		return 0, false
	}
	if j < len(v) && (isWord(v[j]) || v[j] == ':') {
		return 0, false
	}
	if colons < 2 || groups > 8 || !double && groups != 8 || double && groups > 7 || groups == 0 {
		return 0, false
	}
	return j, true
}

// phone reads an international (+CC …) or NANP ((NXX) NXX-XXXX) number
// starting at '+' or '('.
func phone(v []byte, i int) (int, bool) {
	var ds [16]byte
	j, digits, groups := i, 0, 0
	if v[i] == '+' {
		j++
	}
	paren := false
loop:
	for j < len(v) {
		c := v[j]
		switch {
		case class[c]&cDigit != 0:
			for j < len(v) && class[v[j]]&cDigit != 0 {
				if digits < len(ds) {
					ds[digits] = v[j]
				}
				digits++
				j++
			}
			groups++
			continue
		case c == '(' && !paren && (j == i || v[j-1] == ' '):
			paren = true
		case c == ')' && paren && class[v[j-1]]&cDigit != 0:
			paren = false
		case (c == ' ' || c == '-' || c == '.') && j > i && j+1 < len(v) && (class[v[j+1]]&cDigit != 0 || v[j+1] == '('):
		default:
			break loop
		}
		j++
	}
	if paren || j < len(v) && isWord(v[j]) {
		return 0, false
	}
	if v[i] == '+' {
		return j, digits >= 8 && digits <= 15 && ds[0] != '0'
	}
	// (NXX) NXX-XXXX
	return j, digits == 10 && groups == 3 && j-i >= 13 && v[i+4] == ')' && ds[0] >= '2' && ds[3] >= '2'
}
