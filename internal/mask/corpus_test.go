package mask

import (
	"bufio"
	"encoding/base64"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update", false, "regenerate testdata/corpus.txt")

const corpusFile = "testdata/corpus.txt"

// TestCorpusAccuracy measures each detector's precision and recall on a
// labelled corpus of generated values, hard look-alikes included (Luhn
// failures, cards of no network, invalid SSN areas, dates, versions,
// times, MAC addresses, URL userinfo, hex digests, certificates). Each line
// is a label (a detector's name, or "none") and a quoted value; a value
// labelled with a detector must be found by it, and by no other.
func TestCorpusAccuracy(t *testing.T) {
	if *updateCorpus {
		writeCorpus(t)
	}
	f, err := os.Open(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := NewScanner(Default.With(Entropy))
	type counts struct{ tp, fp, fn int }
	stats := map[string]*counts{}
	for d := Detector(1); d < Custom; d++ {
		stats[d.String()] = &counts{}
	}
	lines := 0
	var misses []string
	in := bufio.NewScanner(f)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		label, quoted, ok := strings.Cut(in.Text(), "\t")
		value, err := strconv.Unquote(quoted)
		if !ok || err != nil {
			t.Fatalf("line %d: %q", lines+1, in.Text())
		}
		lines++
		got := map[string]bool{}
		for _, m := range sc.Find([]byte(value), nil) {
			got[m.Detector.String()] = true
		}
		for name, c := range stats {
			switch {
			case name == label && got[name]:
				c.tp++
			case name == label:
				c.fn++
				misses = append(misses, fmt.Sprintf("missed %s: %q", name, value))
			case got[name]:
				c.fp++
				misses = append(misses, fmt.Sprintf("%s found in %s %q", name, label, value))
			}
		}
	}
	if lines < 10_000 {
		t.Fatalf("corpus has %d values, want at least 10,000", lines)
	}
	names := make([]string, 0, len(stats))
	for n := range stats {
		names = append(names, n)
	}
	sort.Strings(names)
	var table strings.Builder
	fmt.Fprintf(&table, "%d values\n| detector | positives | precision | recall |\n|---|---|---|---|\n", lines)
	for _, n := range names {
		c := stats[n]
		p := float64(c.tp) / float64(max(c.tp+c.fp, 1))
		r := float64(c.tp) / float64(max(c.tp+c.fn, 1))
		fmt.Fprintf(&table, "| %s | %d | %.4f | %.4f |\n", n, c.tp+c.fn, p, r)
		if c.tp+c.fn < 100 || p < 0.99 || r < 0.99 {
			t.Errorf("%s: %d positives, precision %.4f, recall %.4f; want ≥ 100, ≥ 0.99, ≥ 0.99", n, c.tp+c.fn, p, r)
		}
	}
	t.Log("\n" + table.String())
	for i, m := range misses {
		if i == 20 {
			t.Logf("… and %d more", len(misses)-20)
			break
		}
		t.Log(m)
	}
}

// writeCorpus generates the corpus, the same every time (fixed seed).
func writeCorpus(t *testing.T) {
	g := &gen{r: rand.New(rand.NewPCG(7, 22))}
	var out strings.Builder
	add := func(label, v string) { fmt.Fprintf(&out, "%s\t%s\n", label, strconv.Quote(v)) }
	for range 700 {
		add("email", g.embed(g.email()))
		add("card", g.embed(g.card(true)))
		add("ssn", g.embed(g.ssn(true)))
		add("iban", g.embed(g.iban(true)))
		add("phone", g.embed(g.phone()))
		add("ipv4", g.embed(g.ipv4()))
		add("ipv6", g.embed(g.ipv6()))
		add("aws_key_id", g.embed(g.awsKeyID()))
		add("aws_secret", g.embed(g.awsSecret()))
		add("jwt", g.embed(g.jwt()))
		add("pem_private_key", g.pem(true))
		add("entropy", g.embed(g.entropyToken()))
	}
	for range 350 {
		// Hard look-alikes: none of them is sensitive.
		for _, v := range []string{
			g.card(false), g.orderNumber(), g.ssn(false), g.date(), g.version(), g.timeOfDay(),
			g.mac(), g.urlUserinfo(), g.hexDigest(), g.pem(false), g.iban(false), g.zip4(),
			g.badIPv4(), g.notEmail(), g.sentence(), g.price(),
		} {
			add("none", g.embed(v))
		}
	}
	if err := os.WriteFile(corpusFile, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

type gen struct{ r *rand.Rand }

func (g *gen) pick(s ...string) string { return s[g.r.IntN(len(s))] }
func (g *gen) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + g.r.IntN(10))
	}
	return string(b)
}
func (g *gen) chars(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

const (
	lowers = "abcdefghijklmnopqrstuvwxyz"
	uppers = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b64    = uppers + lowers + "0123456789+/"
)

var words = strings.Fields("the order shipped to our customer on time please review invoice total account status " +
	"pending approved report weekly build release notes meeting agenda update project summary")

func (g *gen) sentence() string {
	n := 3 + g.r.IntN(8)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = g.pick(words...)
	}
	return strings.Join(ws, " ")
}

// embed returns v alone, or inside a sentence.
func (g *gen) embed(v string) string {
	switch g.r.IntN(3) {
	case 0:
		return v
	case 1:
		return g.pick("see ", "contact: ", "value=", "(", "id ") + v + g.pick("", ".", ")", " today", ", thanks")
	}
	return g.sentence() + " " + v + " " + g.sentence()
}

func (g *gen) email() string {
	local := g.chars(1, lowers) + g.chars(2+g.r.IntN(8), lowers+"0123456789")
	if g.r.IntN(3) == 0 {
		local += g.pick(".", "_", "+", "-") + g.chars(2+g.r.IntN(5), lowers)
	}
	domain := g.chars(3+g.r.IntN(8), lowers) + "." + g.pick("com", "org", "net", "io", "co.uk", "de", "example")
	if g.r.IntN(4) == 0 {
		domain = g.pick("mail.", "eu.", "corp.") + domain
	}
	v := local + "@" + domain
	if g.r.IntN(10) == 0 {
		v = "mailto:" + v
	}
	if g.r.IntN(10) == 0 {
		v = strings.ToUpper(v[:1]) + v[1:]
	}
	return v
}

func (g *gen) notEmail() string {
	return g.pick(
		"@"+g.chars(6, lowers),
		g.chars(5, lowers)+"@"+g.chars(5, lowers),
		g.chars(4, lowers)+" at "+g.chars(6, lowers)+" dot com",
		g.chars(3, lowers)+"@"+g.chars(4, lowers)+".c",
		"https://example.com/@"+g.chars(6, lowers),
	)
}

func (g *gen) urlUserinfo() string {
	return g.pick("https://", "ftp://", "ssh://") + g.chars(5, lowers) + g.pick("", ":"+g.chars(6, lowers)) + "@" +
		g.chars(6, lowers) + ".example.com/" + g.chars(4, lowers)
}

func luhnDigit(body string) byte {
	sum := 0
	for i := 0; i < len(body); i++ {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// card returns a Luhn-valid number of a major network (valid), or one of
// no network (a Luhn-valid 16 digits starting with 0, 1, 8 or 9).
func (g *gen) card(valid bool) string {
	var prefix string
	n := 16
	if valid {
		switch g.r.IntN(6) {
		case 0:
			prefix, n = "4", 16
		case 1:
			prefix = strconv.Itoa(51 + g.r.IntN(5))
		case 2:
			prefix = strconv.Itoa(2221 + g.r.IntN(500))
		case 3:
			prefix, n = g.pick("34", "37"), 15
		case 4:
			prefix = g.pick("6011", "65")
		case 5:
			prefix = strconv.Itoa(3528 + g.r.IntN(62))
		}
	} else {
		prefix = g.pick("0", "1", "8", "9")
	}
	body := prefix + g.digits(n-1-len(prefix))
	num := body + string(luhnDigit(body))
	switch {
	case n == 16 && g.r.IntN(3) == 0:
		sep := g.pick(" ", "-")
		return num[:4] + sep + num[4:8] + sep + num[8:12] + sep + num[12:]
	case n == 15 && g.r.IntN(3) == 0:
		return num[:4] + " " + num[4:10] + " " + num[10:]
	}
	return num
}

// orderNumber is 16 digits whose Luhn digit is wrong.
func (g *gen) orderNumber() string {
	prefix := g.pick("4", "5", "37", "6011")
	body := prefix + g.digits(15-len(prefix))
	bad := (luhnDigit(body)-'0'+byte(1+g.r.IntN(9)))%10 + '0'
	return body + string(bad)
}

func (g *gen) ssn(valid bool) string {
	area, group, serial := 1+g.r.IntN(899), 1+g.r.IntN(99), 1+g.r.IntN(9999)
	if area == 666 {
		area = 665
	}
	if !valid {
		switch g.r.IntN(4) {
		case 0:
			area = g.pickInt(0, 666, 900+g.r.IntN(100))
		case 1:
			group = 0
		case 2:
			serial = 0
		case 3:
			area = 900 + g.r.IntN(100)
		}
	}
	return fmt.Sprintf("%03d-%02d-%04d", area, group, serial)
}

func (g *gen) pickInt(v ...int) int { return v[g.r.IntN(len(v))] }

func (g *gen) iban(valid bool) string {
	type country struct {
		code string
		bban string // d: digit, a: upper letter, c: either
	}
	cs := []country{{"DE", "dddddddddddddddddd"}, {"GB", "aaaadddddddddddddd"}, {"FR", "ddddddddddcccccccccccdd"},
		{"ES", "dddddddddddddddddddd"}, {"IT", "addddddddddcccccccccccc"}, {"NL", "aaaadddddddddd"},
		{"CH", "dddddcccccccccccc"}, {"PL", "dddddddddddddddddddddddd"}, {"BE", "dddddddddddd"}}
	c := cs[g.r.IntN(len(cs))]
	var bban strings.Builder
	for _, k := range c.bban {
		switch k {
		case 'd':
			bban.WriteString(g.digits(1))
		case 'a':
			bban.WriteString(g.chars(1, uppers))
		default:
			bban.WriteString(g.chars(1, uppers+"0123456789"))
		}
	}
	rem := 0
	for _, ch := range bban.String() + c.code + "00" {
		if ch >= 'A' {
			rem = (rem*100 + int(ch-'A'+10)) % 97
		} else {
			rem = (rem*10 + int(ch-'0')) % 97
		}
	}
	check := 98 - rem
	if !valid {
		for bad := check; ; bad = g.r.IntN(100) {
			if bad%97 != check%97 {
				check = bad
				break
			}
		}
	}
	v := fmt.Sprintf("%s%02d%s", c.code, check, bban.String())
	if g.r.IntN(2) == 0 {
		var grouped []string
		for i := 0; i < len(v); i += 4 {
			grouped = append(grouped, v[i:min(i+4, len(v))])
		}
		v = strings.Join(grouped, " ")
	}
	return v
}

func (g *gen) phone() string {
	nxx := func() string { return string(byte('2'+g.r.IntN(8))) + g.digits(2) }
	switch g.r.IntN(6) {
	case 0:
		return "(" + nxx() + ") " + nxx() + "-" + g.digits(4)
	case 1:
		return nxx() + "-" + nxx() + "-" + g.digits(4)
	case 2:
		return nxx() + "." + nxx() + "." + g.digits(4)
	case 3:
		return "+1 " + nxx() + " " + nxx() + " " + g.digits(4)
	case 4:
		return "+" + g.pick("44", "49", "33", "81", "61") + " " + g.digits(2+g.r.IntN(2)) + " " + g.digits(4) + " " + g.digits(4)
	}
	return "+" + g.pick("34", "39", "31") + "-" + g.digits(3) + "-" + g.digits(3) + "-" + g.digits(3)
}

func (g *gen) octet() string { return strconv.Itoa(g.r.IntN(256)) }

func (g *gen) ipv4() string { return g.octet() + "." + g.octet() + "." + g.octet() + "." + g.octet() }

func (g *gen) badIPv4() string {
	return g.pick(
		strconv.Itoa(256+g.r.IntN(700))+"."+g.octet()+"."+g.octet()+"."+g.octet(),
		g.octet()+"."+g.octet()+"."+g.octet(),
		g.ipv4()+"."+g.octet(),
		"v"+g.ipv4(),
	)
}

func (g *gen) ipv6() string {
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = strconv.FormatUint(uint64(g.r.IntN(65536)), 16)
	}
	switch g.r.IntN(3) {
	case 0:
		return strings.Join(groups, ":")
	case 1:
		k := 1 + g.r.IntN(5)
		return strings.Join(groups[:k], ":") + "::" + strings.Join(groups[k+2:], ":")
	}
	return g.pick("2001:db8::", "fe80::", "::ffff:") + groups[0]
}

func (g *gen) mac() string {
	parts := make([]string, 6)
	for i := range parts {
		parts[i] = fmt.Sprintf("%02x", g.r.IntN(256))
	}
	return strings.Join(parts, ":")
}

func (g *gen) timeOfDay() string {
	return fmt.Sprintf("%02d:%02d:%02d", g.r.IntN(24), g.r.IntN(60), g.r.IntN(60))
}

func (g *gen) date() string {
	return fmt.Sprintf("%04d-%02d-%02d", 1990+g.r.IntN(40), 1+g.r.IntN(12), 1+g.r.IntN(28))
}

func (g *gen) version() string {
	return g.pick("v", "", "version ") + fmt.Sprintf("%d.%d.%d", g.r.IntN(20), g.r.IntN(40), g.r.IntN(100))
}

func (g *gen) zip4() string { return g.digits(5) + "-" + g.digits(4) }

func (g *gen) price() string {
	return fmt.Sprintf("$%d,%03d.%02d", 1+g.r.IntN(99), g.r.IntN(1000), g.r.IntN(100))
}

func (g *gen) awsKeyID() string {
	return g.pick("AKIA", "ASIA") + g.chars(16, uppers+"234567")
}

func (g *gen) awsSecret() string {
	for {
		s := g.chars(40, b64)
		if strings.ContainsAny(s, uppers) && strings.ContainsAny(s, lowers) && strings.ContainsAny(s, "0123456789") {
			return s
		}
	}
}

func (g *gen) hexDigest() string { return g.chars(g.pickInt(32, 40, 64), "0123456789abcdef") }

func (g *gen) jwt() string {
	enc := base64.RawURLEncoding.EncodeToString
	head := enc([]byte(`{"alg":"` + g.pick("HS256", "RS256", "ES256") + `","typ":"JWT"}`))
	body := enc([]byte(fmt.Sprintf(`{"sub":"%s","iat":%d}`, g.chars(8, lowers), 1700000000+g.r.IntN(1e8))))
	return head + "." + body + "." + g.chars(43, uppers+lowers+"0123456789-_")
}

func (g *gen) pem(private bool) string {
	kind := g.pick("RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY")
	if !private {
		kind = g.pick("CERTIFICATE", "PUBLIC KEY", "CERTIFICATE REQUEST")
	}
	lines := []string{"-----BEGIN " + kind + "-----"}
	for range 2 + g.r.IntN(4) {
		lines = append(lines, g.chars(64, b64))
	}
	return strings.Join(append(lines, "-----END "+kind+"-----"), "\n")
}

func (g *gen) entropyToken() string {
	for {
		s := g.pick("sk_live_", "ghp_", "xoxb-", "") + g.chars(28+g.r.IntN(20), uppers+lowers+"0123456789")
		if len(s) != 40 && strings.ContainsAny(s, uppers) && strings.ContainsAny(s, lowers) && strings.ContainsAny(s, "0123456789") {
			return s
		}
	}
}
