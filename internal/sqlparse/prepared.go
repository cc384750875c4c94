package sqlparse

import "maps"

// Prepared tracks the SQL-level prepared statements (PREPARE name AS …) of
// one session, so EXECUTE name is judged as the statement it runs.
type Prepared map[string][]Statement

// Resolve returns r with each EXECUTE of a known prepared statement
// followed by that statement's classification (nested), and each EXECUTE of
// an unknown one marked dynamic: the gateway cannot see what it runs. r
// itself, which may be shared through a cache, is never modified.
func (p Prepared) Resolve(r *Result) *Result {
	has := false
	for _, s := range r.Statements {
		if s.Kind == KindExecute {
			has = true
			break
		}
	}
	if !has {
		return r
	}
	out := &Result{Unknown: r.Unknown, Error: r.Error}
	// Statements prepared (or deallocated) earlier in the same text.
	var local Prepared
	for i, s := range r.Statements {
		if s.Nested {
			out.Statements = append(out.Statements, s)
			continue
		}
		switch s.Kind {
		case KindPrepare, "DEALLOCATE", "DISCARD":
			if local == nil {
				local = maps.Clone(p)
			}
			local.Update(&Result{Statements: r.Statements[i:nestedEnd(r.Statements, i)]})
		}
		if s.Kind != KindExecute {
			out.Statements = append(out.Statements, s)
			continue
		}
		known := p
		if local != nil {
			known = local
		}
		inner, ok := known[s.Prepared]
		if !ok {
			s.Dynamic = true
			out.Statements = append(out.Statements, s)
			continue
		}
		out.Statements = append(out.Statements, s)
		for _, in := range inner {
			in.Nested = true
			out.Statements = append(out.Statements, in)
		}
	}
	out.summarize()
	return out
}

// Update records the PREPARE and DEALLOCATE statements of r, a text that
// was allowed to run.
func (p Prepared) Update(r *Result) {
	for i := 0; i < len(r.Statements); i++ {
		s := r.Statements[i]
		switch s.Kind {
		case KindPrepare:
			// The prepared statement is the nested run that follows.
			p[s.Prepared] = append([]Statement(nil), r.Statements[i+1:nestedEnd(r.Statements, i)]...)
		case "DEALLOCATE":
			if s.Prepared == "" {
				clear(p) // DEALLOCATE ALL
			} else {
				delete(p, s.Prepared)
			}
		case "DISCARD":
			clear(p)
		}
	}
}

// nestedEnd returns the index after statement i and the nested statements
// that follow it.
func nestedEnd(stmts []Statement, i int) int {
	j := i + 1
	for j < len(stmts) && stmts[j].Nested {
		j++
	}
	return j
}
