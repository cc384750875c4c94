package mask

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// benchValues returns n column values, a share of them sensitive. rows
// is a typical table's mix (descriptions, names, ids, amounts,
// timestamps, status words); otherwise every value is a hard look-alike
// (dates, versions, times, ZIP+4, order numbers, digit runs).
func benchValues(n int, sensitive float64, rows bool) [][]byte {
	g := &gen{r: rand.New(rand.NewPCG(1, 2))}
	plain := []func() string{g.date, g.version, g.price, g.timeOfDay, g.zip4, g.orderNumber,
		func() string { return g.digits(6) }}
	if rows {
		plain = []func() string{g.sentence, g.sentence, g.sentence,
			func() string { return g.chars(1, uppers) + g.chars(4+g.r.IntN(6), lowers) },
			func() string { return strconv.Itoa(g.r.IntN(10_000_000)) },
			func() string { return strconv.Itoa(g.r.IntN(100_000)) + "." + g.digits(2) },
			func() string { return g.date() + " " + g.timeOfDay() + "." + g.digits(6) + "+00" },
			func() string { return g.pick("active", "pending", "closed", "t", "f") }}
	}
	secret := []func() string{g.email, func() string { return g.card(true) }, func() string { return g.ssn(true) },
		g.phone, g.ipv4, g.awsKeyID, g.jwt}
	out := make([][]byte, n)
	for i := range out {
		if g.r.Float64() < sensitive {
			out[i] = []byte(secret[g.r.IntN(len(secret))]())
		} else {
			out[i] = []byte(plain[g.r.IntN(len(plain))]())
		}
	}
	return out
}

func benchMask(b *testing.B, sensitive float64, rows bool) {
	values := benchValues(10_000, sensitive, rows)
	total := 0
	for _, v := range values {
		total += len(v)
	}
	sc := NewScanner(Default)
	m := NewMasker([]byte("key"))
	var matches []Match
	var out []byte
	b.SetBytes(int64(total))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, v := range values {
			matches = sc.Find(v, matches[:0])
			if len(matches) > 0 {
				out, _ = m.Apply(out[:0], v, matches, Action{Strategy: Redact})
			}
		}
	}
}

// BenchmarkMask scans column values with every default detector on and
// masks what it finds: typical rows with none sensitive and with 10 %
// sensitive, and hard look-alikes (the slowest input: digits everywhere).
func BenchmarkMask(b *testing.B) {
	b.Run("rows/no-matches", func(b *testing.B) { benchMask(b, 0, true) })
	b.Run("rows/10pct-matches", func(b *testing.B) { benchMask(b, 0.10, true) })
	b.Run("look-alikes/no-matches", func(b *testing.B) { benchMask(b, 0, false) })
}

// BenchmarkFloor is the cheapest per-byte pass over the same values (a
// class-table lookup per byte), for scale.
func BenchmarkFloor(b *testing.B) {
	values := benchValues(10_000, 0, true)
	total := 0
	for _, v := range values {
		total += len(v)
	}
	b.SetBytes(int64(total))
	var acc uint8
	for range b.N {
		for _, v := range values {
			for _, c := range v {
				acc |= class[c]
			}
		}
	}
	if acc == 0 {
		b.Fatal("nothing scanned")
	}
}
