package sqlparse

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Postgres classifies PostgreSQL text without caching; Classifier.Classify
// is the cached entry point.
func Postgres(text string) *Result {
	tree, err := pg.Parse(text)
	if err != nil {
		return unknownResult(err.Error())
	}
	r := &Result{Statements: make([]Statement, 0, len(tree.Stmts))}
	for _, raw := range tree.Stmts {
		w := walker{r: r}
		w.statement(nodeMessage(raw.Stmt), false, nil)
	}
	r.summarize()
	return r
}

// walker collects one top-level statement and those nested in it.
type walker struct {
	r *Result
}

// statement appends a Statement for msg (nested in the one before, or
// not) and walks its contents.
func (w *walker) statement(msg proto.Message, nested bool, scope []string) {
	if msg == nil {
		return
	}
	i := len(w.r.Statements)
	w.r.Statements = append(w.r.Statements, Statement{Nested: nested})
	w.describe(i, msg)
	w.walk(i, msg, scope, true)
}

// nodeMessage unwraps a Node to the statement or expression it holds.
func nodeMessage(n *pg.Node) proto.Message {
	if n == nil {
		return nil
	}
	var m proto.Message
	n.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() != nil {
			m = v.Message().Interface()
		}
		return false
	})
	return m
}

// describe sets the kind, object and flags of statement i from its node.
func (w *walker) describe(i int, msg proto.Message) {
	s := &w.r.Statements[i]
	switch n := msg.(type) {
	case *pg.SelectStmt:
		s.Kind = KindSelect
		s.HasWhere = bounded(n.WhereClause)
		if n.IntoClause != nil { // SELECT … INTO creates a table
			s.Kind, s.Object, s.Writes, s.DDL = KindCreate, "TABLE", true, true
		}
	case *pg.InsertStmt:
		s.Kind, s.Writes = KindInsert, true
	case *pg.UpdateStmt:
		s.Kind, s.Writes, s.HasWhere = KindUpdate, true, bounded(n.WhereClause)
	case *pg.DeleteStmt:
		s.Kind, s.Writes, s.HasWhere = KindDelete, true, bounded(n.WhereClause)
	case *pg.MergeStmt:
		s.Kind, s.Writes, s.HasWhere = KindMerge, true, bounded(n.JoinCondition)
	case *pg.TruncateStmt:
		s.Kind, s.Writes = KindTruncate, true
	case *pg.CopyStmt:
		s.Kind, s.Writes = KindCopy, n.IsFrom
		// PROGRAM runs a shell command as the server; a file name is a
		// file on the server. STDIN and STDOUT are neither.
		s.Dangerous = n.IsProgram || n.Filename != ""
	case *pg.DoStmt:
		s.Kind, s.Dynamic = KindDo, true
	case *pg.CallStmt:
		s.Kind = KindCall
	case *pg.VariableSetStmt:
		s.Kind = KindSet
		if n.Kind == pg.VariableSetKind_VAR_RESET || n.Kind == pg.VariableSetKind_VAR_RESET_ALL {
			s.Kind = "RESET"
		}
	case *pg.VariableShowStmt:
		s.Kind = "SHOW"
	case *pg.TransactionStmt:
		s.Kind = KindTransaction
	case *pg.PrepareStmt:
		s.Kind, s.Prepared = KindPrepare, n.Name
	case *pg.ExecuteStmt:
		s.Kind, s.Prepared = KindExecute, n.Name
	case *pg.DeallocateStmt:
		s.Kind, s.Prepared = "DEALLOCATE", n.Name
	case *pg.ExplainStmt:
		s.Kind = KindExplain
	case *pg.DropStmt:
		s.Kind, s.Object, s.DDL = KindDrop, objectName(n.RemoveType), true
	case *pg.GrantStmt:
		s.Kind, s.Object, s.DDL = KindGrant, objectName(n.Objtype), true
		if !n.IsGrant {
			s.Kind = KindRevoke
		}
	case *pg.GrantRoleStmt:
		s.Kind, s.Object, s.DDL = KindGrant, "ROLE", true
		if !n.IsGrant {
			s.Kind = KindRevoke
		}
	case *pg.AlterTableStmt:
		s.Kind, s.Object, s.DDL = KindAlter, objectName(n.Objtype), true
	case *pg.RenameStmt:
		s.Kind, s.Object, s.DDL = KindAlter, objectName(n.RenameType), true
	case *pg.LoadStmt:
		s.Kind, s.Dangerous = "LOAD", true
	case *pg.CreateFunctionStmt:
		s.Kind, s.Object, s.DDL = KindCreate, "FUNCTION", true
		if n.IsProcedure {
			s.Object = "PROCEDURE"
		}
		s.Dangerous = untrustedLanguages[functionLanguage(n.Options)]
	case *pg.CreateTableAsStmt:
		s.Kind, s.Object, s.Writes, s.DDL = KindCreate, objectName(n.Objtype), true, true
	case *pg.RefreshMatViewStmt:
		s.Kind, s.Object, s.Writes, s.DDL = "REFRESH", "MATERIALIZED VIEW", true, true
	default:
		s.Kind, s.Object, s.DDL = byTypeName(string(msg.ProtoReflect().Descriptor().Name()))
	}
}

// byTypeName derives the kind of the remaining statement node types from
// their names: CreateRoleStmt is CREATE ROLE, AlterSystemStmt ALTER
// SYSTEM, ListenStmt LISTEN.
func byTypeName(name string) (kind, object string, ddl bool) {
	name = strings.TrimSuffix(name, "Stmt")
	if o, ok := specialObjects[name]; ok {
		return o[0], o[1], o[0] == KindCreate || o[0] == KindAlter || o[0] == KindDrop || o[0] == "COMMENT" || o[0] == "SECURITY LABEL"
	}
	for _, prefix := range []string{"Create", "Alter", "Drop"} {
		if rest, ok := strings.CutPrefix(name, prefix); ok && rest != "" {
			return strings.ToUpper(prefix), upperWords(rest), true
		}
	}
	return upperWords(name), "", false
}

var specialObjects = map[string][2]string{
	"Createdb":               {KindCreate, "DATABASE"},
	"Dropdb":                 {KindDrop, "DATABASE"},
	"AlterDatabaseSet":       {KindAlter, "DATABASE"},
	"Index":                  {KindCreate, "INDEX"},
	"View":                   {KindCreate, "VIEW"},
	"Rule":                   {KindCreate, "RULE"},
	"Define":                 {KindCreate, "OBJECT"},
	"CompositeType":          {KindCreate, "TYPE"},
	"CreateSchema":           {KindCreate, "SCHEMA"},
	"Comment":                {"COMMENT", ""},
	"SecLabel":               {"SECURITY LABEL", ""},
	"DropOwned":              {KindDrop, "OWNED"},
	"ReassignOwned":          {KindAlter, "OWNED"},
	"AlterDefaultPrivileges": {KindAlter, "DEFAULT PRIVILEGES"},
	"ImportForeignSchema":    {KindCreate, "FOREIGN TABLE"},
	"Cluster":                {"CLUSTER", ""},
	"ConstraintsSet":         {KindSet, "CONSTRAINTS"},
	"VariableShow":           {"SHOW", ""},
	"DeclareCursor":          {"DECLARE", ""},
	"ClosePortal":            {"CLOSE", ""},
	"CheckPoint":             {"CHECKPOINT", ""},
}

// upperWords turns "AlterSystem" into "ALTER SYSTEM".
func upperWords(camel string) string {
	var b strings.Builder
	for i, r := range camel {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func objectName(t pg.ObjectType) string {
	return strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " ")
}

func functionLanguage(opts []*pg.Node) string {
	for _, o := range opts {
		if d := o.GetDefElem(); d != nil && d.Defname == "language" {
			return d.Arg.GetString_().GetSval()
		}
	}
	return ""
}

// bounded reports whether a condition refers to a row: a column or the
// cursor of WHERE CURRENT OF. A condition made only of constants holds for
// every row or none.
func bounded(cond *pg.Node) bool {
	if cond == nil {
		return false
	}
	found := false
	var visit func(m protoreflect.Message)
	visit = func(m protoreflect.Message) {
		switch m.Interface().(type) {
		case *pg.ColumnRef, *pg.CurrentOfExpr:
			found = true
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			eachMessage(fd, v, visit)
			return !found
		})
	}
	visit(cond.ProtoReflect())
	return found
}

// eachMessage calls fn for a message field's value or each element of a
// repeated message field.
func eachMessage(fd protoreflect.FieldDescriptor, v protoreflect.Value, fn func(protoreflect.Message)) {
	if fd.Message() == nil || fd.IsMap() {
		return
	}
	if fd.IsList() {
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			fn(l.Get(i).Message())
		}
		return
	}
	fn(v.Message())
}

// walk visits msg's subtree, adding tables and functions to statement i
// and nested statements of their own. scope holds the WITH query names
// visible here. top is true for the statement node itself.
func (w *walker) walk(i int, msg proto.Message, scope []string, top bool) {
	switch n := msg.(type) {
	case *pg.RangeVar:
		w.table(i, n, scope)
		return
	case *pg.FuncCall:
		w.function(i, n)
	case *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.MergeStmt:
		if !top { // a data-modifying WITH query, or one inside COPY (…)
			w.statement(msg, true, scope)
			return
		}
	case *pg.PrepareStmt:
		w.statement(nodeMessage(n.Query), true, scope)
		return
	case *pg.ExplainStmt:
		if explainAnalyze(n.Options) { // EXPLAIN ANALYZE runs the statement
			w.statement(nodeMessage(n.Query), true, scope)
			return
		}
	case *pg.WithClause:
		return // handled by the statement that holds it, below
	case *pg.A_Const, *pg.ColumnRef, *pg.ParamRef, *pg.String, *pg.Integer, *pg.Float,
		*pg.Boolean, *pg.TypeName, *pg.Alias, *pg.A_Star:
		return // leaves: no table, function or statement below
	}
	if with := withClause(msg); with != nil {
		scope = w.with(i, with, scope)
	}
	msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		eachMessage(fd, v, func(m protoreflect.Message) {
			w.walk(i, m.Interface(), scope, false)
		})
		return true
	})
}

// with walks the WITH queries of a statement, each seeing the names before
// it (all of them when RECURSIVE), and returns the scope for the body.
func (w *walker) with(i int, with *pg.WithClause, scope []string) []string {
	names := make([]string, 0, len(scope)+len(with.Ctes))
	names = append(names, scope...)
	for _, c := range with.Ctes {
		if cte := c.GetCommonTableExpr(); cte != nil {
			names = append(names, cte.Ctename)
		}
	}
	for k, c := range with.Ctes {
		cte := c.GetCommonTableExpr()
		if cte == nil {
			continue
		}
		visible := names
		if !with.Recursive {
			visible = names[:len(scope)+k]
		}
		if q := nodeMessage(cte.Ctequery); q != nil {
			w.walk(i, q, visible, false)
		}
	}
	return names
}

func withClause(msg proto.Message) *pg.WithClause {
	switch n := msg.(type) {
	case *pg.SelectStmt:
		return n.WithClause
	case *pg.InsertStmt:
		return n.WithClause
	case *pg.UpdateStmt:
		return n.WithClause
	case *pg.DeleteStmt:
		return n.WithClause
	case *pg.MergeStmt:
		return n.WithClause
	}
	return nil
}

func explainAnalyze(opts []*pg.Node) bool {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || d.Defname != "analyze" {
			continue
		}
		if d.Arg == nil {
			return true
		}
		// ANALYZE false / off / 0 turn it off; anything else keeps it.
		switch v := nodeMessage(d.Arg).(type) {
		case *pg.Boolean:
			return v.Boolval
		case *pg.String:
			return v.Sval != "false" && v.Sval != "off"
		case *pg.Integer:
			return v.Ival != 0
		}
		return true
	}
	return false
}

func (w *walker) table(i int, rv *pg.RangeVar, scope []string) {
	if rv.Schemaname == "" && rv.Catalogname == "" {
		for _, name := range scope {
			if name == rv.Relname {
				return // a WITH query, not a table
			}
		}
	}
	name := rv.Relname
	if rv.Schemaname != "" {
		name = rv.Schemaname + "." + name
	}
	if rv.Catalogname != "" {
		name = rv.Catalogname + "." + name
	}
	s := &w.r.Statements[i]
	s.Tables = appendUnique(s.Tables, name)
}

func (w *walker) function(i int, fc *pg.FuncCall) {
	parts := make([]string, 0, len(fc.Funcname))
	for _, p := range fc.Funcname {
		parts = append(parts, p.GetString_().GetSval())
	}
	name := funcName(parts)
	s := &w.r.Statements[i]
	s.Functions = appendUnique(s.Functions, name)
	if dynamicFuncs[name] {
		s.Dynamic = true
	}
	if dangerousFuncs[name] || strings.HasPrefix(name, "dblink") {
		s.Dangerous = true
	}
}

// Fingerprint identifies a PostgreSQL statement's shape, the same for
// statements that differ only in constants (pg_query's fingerprint, as
// pg_stat_statements-style tools use); "" when the text does not parse.
func Fingerprint(text string) string {
	fp, err := pg.Fingerprint(text)
	if err != nil {
		return ""
	}
	return fp
}
