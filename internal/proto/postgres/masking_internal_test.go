package postgres

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/gate"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/proto"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres/pgwire"
	"github.com/gatehouse-dev/gatehouse/internal/recording"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
)

// fuzzPlan masks columns 0 and 2 by content and column 1 whole.
func fuzzPlan(t testing.TB) (*session, *rowPlan) {
	docs, err := resource.Decode([]byte(`kind: Policy
name: m
connections: {names: ["*"]}
rules:
  - {name: c, action: mask, when: "true", mask: {detectors: [default]}}
  - {name: w, action: mask, when: "true", mask: {columns: [public.t.x], strategy: partial}}
`))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := policy.Compile(*docs[0].Policy)
	if err != nil {
		t.Fatal(err)
	}
	content, whole := cp.Rules[0], cp.Rules[1]
	s := &session{engine: &Engine{deps: proto.Deps{Gate: &gate.Gate{}}}}
	return s, &rowPlan{any: true, rules: cp.Rules, cols: []colPlan{
		{content: []*policy.Rule{content}, text: true},
		{whole: whole, wholeName: "public.t.x", countKey: "column public.t.x", text: true},
		{content: []*policy.Rule{content}, text: false},
	}}
}

// validDataRow checks a DataRow's framing: its length, its column count,
// and every value's length.
func validDataRow(t *testing.T, frame []byte, cols int) {
	typ, total, ok := pgwire.Header(frame)
	if !ok || typ != pgwire.MsgDataRow || total != len(frame) || len(frame) < 7 {
		t.Fatalf("bad frame header %q", frame)
	}
	body := frame[pgwire.HeaderLen:]
	if n := int(binary.BigEndian.Uint16(body)); n != cols {
		t.Fatalf("%d columns, want %d", n, cols)
	}
	p := 2
	for range cols {
		if p+4 > len(body) {
			t.Fatalf("truncated at %d of %q", p, frame)
		}
		l := int32(binary.BigEndian.Uint32(body[p:]))
		p += 4
		if l > 0 {
			p += int(l)
		}
	}
	if p != len(body) {
		t.Fatalf("%d bytes after the values", len(body)-p)
	}
}

// dataRow frames values as a DataRow; a nil value is NULL.
func dataRow(vals ...[]byte) []byte {
	b := recording.AppendRow([]byte{pgwire.MsgDataRow, 0, 0, 0, 0}, vals...)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

// FuzzMaskRow: whatever the row bytes, the masked output is a valid
// DataRow of the same column count (or the row is left as it is).
func FuzzMaskRow(f *testing.F) {
	f.Add(dataRow([]byte("mail a@example.com"), []byte("123-45-6789"), []byte("4111111111111111")))
	f.Add(dataRow(nil, nil, nil))
	f.Add(dataRow([]byte("x"), []byte(""), nil))
	f.Add(dataRow([]byte("x")))
	s, plan := fuzzPlan(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		frame := append([]byte{pgwire.MsgDataRow, 0, 0, 0, 0}, payload...)
		binary.BigEndian.PutUint32(frame[1:], uint32(len(frame)-1))
		p := *plan
		p.cols = append([]colPlan(nil), plan.cols...)
		out := s.maskRow(frame, &p)
		if out == nil {
			return
		}
		n := 0
		if len(payload) >= 2 {
			n = int(binary.BigEndian.Uint16(payload))
		}
		validDataRow(t, out, n)
	})
}

func TestMaskRowKeepsFraming(t *testing.T) {
	s, plan := fuzzPlan(t)
	frame := dataRow([]byte("mail a@example.com now"), []byte("123-45-6789"), []byte("4111111111111111"))
	out := s.maskRow(frame, plan)
	validDataRow(t, out, 3)
	want := "mail [email] now|***-**-6789|NULL"
	var got []string
	body := out[pgwire.HeaderLen+2:]
	for range 3 {
		l := int32(binary.BigEndian.Uint32(body))
		body = body[4:]
		if l < 0 {
			got = append(got, "NULL")
			continue
		}
		got = append(got, string(body[:l]))
		body = body[l:]
	}
	if g := got[0] + "|" + got[1] + "|" + got[2]; g != want {
		t.Errorf("masked row %q, want %q", g, want)
	}
}

// TestMaskRowAllocations: a row the plan leaves alone, and a row whose
// column is masked whole, cost no allocation.
func TestMaskRowAllocations(t *testing.T) {
	s, plan := fuzzPlan(t)
	frame := dataRow([]byte("nothing to see"), []byte("123-45-6789"), []byte("42"))
	s.maskRow(frame, plan) // warm the buffers
	if n := testing.AllocsPerRun(200, func() { s.maskRow(frame, plan) }); n != 0 {
		t.Errorf("maskRow allocates %.1f times per row", n)
	}
	if plan.cols[1].masked == 0 {
		t.Error("the column rule's masking was not counted")
	}
}

// FuzzDescribeParams: any Bind values, well formed or not, are described
// without panicking, and each value a well-formed list holds appears.
func FuzzDescribeParams(f *testing.F) {
	f.Add(recording.AppendRow(nil, []byte("7"), nil, []byte{0, 0, 0, 42}))
	f.Add([]byte{0, 2, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 1, 0x7f, 0xff, 0xff, 0xff, 'x'})
	f.Fuzz(func(t *testing.T, values []byte) {
		out := describeParams(values)
		if len(values) >= 2 && values[0] == 0 && values[1] == 1 && len(values) >= 6 {
			if !strings.HasPrefix(out, "$1 = ") {
				t.Errorf("describeParams(%x) = %q, want it to start with $1", values, out)
			}
		}
	})
}

func TestDescribeParams(t *testing.T) {
	for _, tt := range []struct {
		values []byte
		want   string
	}{
		{recording.AppendRow(nil, []byte("7"), nil, []byte("it's")), "$1 = '7', $2 = NULL, $3 = 'it''s'"},
		{recording.AppendRow(nil, []byte{0, 0, 0, 42}), `$1 = '\x0000002a' (binary)`},
		{[]byte{0, 1, 0, 0, 0, 9, 'x'}, "$1 = (malformed)"},
		{nil, ""},
	} {
		if got := describeParams(tt.values); got != tt.want {
			t.Errorf("describeParams(%x) = %q, want %q", tt.values, got, tt.want)
		}
	}
}
