package postgres

import (
	"encoding/binary"

	"github.com/gatehouse-dev/gatehouse/internal/mask"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres/pgwire"
)

// field is what masking needs of a RowDescription field.
type field struct {
	col colKey
	typ uint32
}

// parseFields reads a RowDescription's fields; nil for a malformed one.
func parseFields(frame []byte) []field {
	body := frame[pgwire.HeaderLen:]
	if len(body) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	out := make([]field, n)
	for i := range out {
		k := 0
		for k < len(body) && body[k] != 0 {
			k++
		}
		if k+1+18 > len(body) {
			return nil
		}
		f := body[k+1:]
		out[i] = field{col: colKey{table: binary.BigEndian.Uint32(f), attnum: int16(binary.BigEndian.Uint16(f[4:]))},
			typ: binary.BigEndian.Uint32(f[6:])}
		body = f[18:]
	}
	return out
}

// textTypes are types whose values are text in both formats (jsonb's
// binary format adds a version byte first): content detectors read them,
// and a masked string is a valid value of them.
var textTypes = map[uint32]bool{25: true, 1043: true, 1042: true, 19: true, 18: true, 114: true, jsonbOID: true,
	142: true, 705: true}

const jsonbOID = 3802

// colPlan is how one column of a result is masked.
type colPlan struct {
	whole     *policy.Rule   // a column rule on it
	wholeName string         // schema.table.column
	countKey  string         // "column " + wholeName, what the audit counts
	masked    int64          // values masked by the column rule, not yet counted
	content   []*policy.Rule // rules whose detectors read it
	text      bool
	jsonb     bool // binary jsonb starts with a version byte
}

// rowPlan is how a result's rows are masked; nil columns pass unchanged.
type rowPlan struct {
	cols  []colPlan
	any   bool
	rules []*policy.Rule // for COPY data
	// unknown: no RowDescription told the columns (a client that executes
	// without describing). Every column is then read by the content
	// detectors, and a value they find becomes NULL, valid in any type.
	unknown bool
}

// masker is a session's result masking, owned by the target→client
// goroutine.
type masker struct {
	curFields []field            // the last RowDescription of a statement
	described map[string][]field // answers to Describe, by "S:name" / "P:name"
	plan      *rowPlan
	valid     bool // plan is for the current result
	matches   []mask.Match
	row, val  []byte
	counts    map[string]int64 // values masked, by detector or column
}

// invalidate forgets the plan: a new result begins.
func (m *masker) invalidate() {
	if m.valid && m.plan != nil {
		m.tally(m.plan)
	}
	m.valid = false
}

// tally moves a plan's column counts into the session's.
func (m *masker) tally(p *rowPlan) {
	for i := range p.cols {
		if c := &p.cols[i]; c.masked > 0 {
			if m.counts == nil {
				m.counts = map[string]int64{}
			}
			m.counts[c.countKey] += c.masked
			c.masked = 0
		}
	}
}

// planFor builds the plan of the result p is receiving.
func (s *session) planFor(p *pendingCmd) *rowPlan {
	m := &s.mask
	if p == nil || len(p.decision.Mask) == 0 {
		return nil
	}
	fields := m.curFields
	if p.kind == kindExecute {
		if f, ok := m.described[p.portalKey]; ok && p.portalKey != "" {
			fields = f
		} else if f, ok := m.described[p.stmtKey]; ok && p.stmtKey != "" {
			fields = f
		}
	}
	if fields == nil && p.kind == kindExecute {
		return &rowPlan{rules: p.decision.Mask, unknown: true, any: true}
	}
	plan := &rowPlan{cols: make([]colPlan, len(fields)), rules: p.decision.Mask}
	for i, f := range fields {
		c := &plan.cols[i]
		c.text, c.jsonb = textTypes[f.typ], f.typ == jsonbOID
		name, named := s.columns[f.col]
		for _, r := range p.decision.Mask {
			if named && c.whole == nil {
				for _, col := range r.Mask.Columns {
					if col == name {
						c.whole, c.wholeName, c.countKey = r, name, "column "+name
						break
					}
				}
			}
			if r.Mask.Scanner != nil && c.text {
				c.content = append(c.content, r)
			}
		}
		plan.any = plan.any || c.whole != nil || len(c.content) > 0
	}
	return plan
}

// maskRow returns the DataRow with its values masked by the plan, or nil
// when nothing in it changed. The result is valid until the next call.
func (s *session) maskRow(frame []byte, plan *rowPlan) []byte {
	m := &s.mask
	body := frame[pgwire.HeaderLen:]
	if len(body) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(body))
	if plan.unknown && len(plan.cols) != n {
		plan.cols = make([]colPlan, n)
		for i := range plan.cols {
			for _, r := range plan.rules {
				if r.Mask.Scanner != nil {
					plan.cols[i].content = append(plan.cols[i].content, r)
				}
			}
		}
	}
	if n != len(plan.cols) {
		// Not the columns the plan was built for: fail closed, as for
		// unknown columns.
		plan.unknown, plan.cols = true, nil
		return s.maskRow(frame, plan)
	}
	masker := s.engine.deps.Gate.ResultMasker()
	out := m.row[:0]
	changed := false
	p := 2
	for i := range n {
		if p+4 > len(body) {
			return nil
		}
		l := int32(binary.BigEndian.Uint32(body[p:]))
		start := p
		p += 4
		var v []byte
		if l >= 0 {
			if int(l) > len(body)-p {
				return nil
			}
			v = body[p : p+int(l)]
			p += int(l)
		}
		nv, null, did := s.maskValue(masker, &plan.cols[i], v)
		if did && !changed {
			changed = true
			out = append(out, frame[:pgwire.HeaderLen+start]...)
		}
		if !changed {
			continue
		}
		if null || l < 0 && !did {
			out = binary.BigEndian.AppendUint32(out, 0xFFFFFFFF)
			continue
		}
		if did {
			v = nv
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	if !changed {
		return nil
	}
	binary.BigEndian.PutUint32(out[1:], uint32(len(out)-1))
	m.row = out
	return out
}

// maskValue masks one value by its column's plan. did reports a change;
// null that the value becomes NULL.
func (s *session) maskValue(masker *mask.Masker, c *colPlan, v []byte) (out []byte, null, did bool) {
	m := &s.mask
	if v == nil || c.whole == nil && len(c.content) == 0 {
		return nil, false, false
	}
	if c.whole != nil {
		c.masked++
		if !c.text || c.whole.Mask.Action.Strategy == mask.Null {
			return nil, true, true // a placeholder string would not be a valid value
		}
		m.val, _ = masker.Whole(m.val[:0], v, "masked", c.whole.Mask.Action)
		return m.val, false, true
	}
	prefix := 0
	if c.jsonb && len(v) > 0 && v[0] == 1 { // jsonb in binary: a version byte, then text
		prefix = 1
	}
	cur := v
	for _, r := range c.content {
		m.matches = r.Mask.Scanner.Find(cur[prefix:], m.matches[:0])
		if len(m.matches) == 0 {
			continue
		}
		for _, mt := range m.matches {
			m.count(mt.Detector.String())
		}
		next, null := masker.Apply(append(m.val[:0:0], cur[:prefix]...), cur[prefix:], m.matches, r.Mask.Action)
		if null || !c.text {
			return nil, true, true // of a type unknown: NULL is valid in any
		}
		cur, did = next, true
	}
	return cur, false, did
}

// maskCopy masks a CopyData message of a COPY TO with the content
// detectors of the plan's rules; nil when nothing changed.
func (s *session) maskCopy(frame []byte, plan *rowPlan) []byte {
	masker := s.engine.deps.Gate.ResultMasker()
	data := frame[pgwire.HeaderLen:]
	cur, did := data, false
	m := &s.mask
	for _, r := range plan.rules {
		if r.Mask.Scanner == nil {
			continue
		}
		m.matches = r.Mask.Scanner.Find(cur, m.matches[:0])
		if len(m.matches) == 0 {
			continue
		}
		for _, mt := range m.matches {
			m.count(mt.Detector.String())
		}
		a := r.Mask.Action
		if a.Strategy == mask.Null {
			a.Strategy = mask.Redact // a line has no NULL of its own
		}
		cur, _ = masker.Apply(nil, cur, m.matches, a)
		did = true
	}
	if !did {
		return nil
	}
	out := append([]byte{pgwire.MsgCopyData, 0, 0, 0, 0}, cur...)
	binary.BigEndian.PutUint32(out[1:], uint32(len(out)-1))
	return out
}

func (m *masker) count(what string) {
	if m.counts == nil {
		m.counts = map[string]int64{}
	}
	m.counts[what]++
}
