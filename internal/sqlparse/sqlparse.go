// Package sqlparse classifies SQL text for policy: what kind of statements
// it holds, which tables they touch, whether an UPDATE or DELETE is bounded
// by a WHERE clause, and whether it runs SQL the gateway cannot see
// (dynamic SQL) or calls functions known to be dangerous. PostgreSQL text is
// parsed with PostgreSQL's own parser (pg_query_go), never with patterns;
// text it cannot parse is classified UNKNOWN, the most dangerous class.
//
// Classification depends only on the structure of the text, never on the
// values of its literals, so a Classifier caches it under a key in which
// plain literals are replaced: `SELECT … WHERE id = 1` and `… id = 2` share
// one entry and cost a map lookup.
package sqlparse

import "strings"

// Statement kinds. Kinds of statements not listed are their command's
// first word(s) in upper case (LISTEN, VACUUM, DISCARD, …).
const (
	KindSelect   = "SELECT"
	KindInsert   = "INSERT"
	KindUpdate   = "UPDATE"
	KindDelete   = "DELETE"
	KindMerge    = "MERGE"
	KindCopy     = "COPY"
	KindCreate   = "CREATE"
	KindAlter    = "ALTER"
	KindDrop     = "DROP"
	KindTruncate = "TRUNCATE"
	KindGrant    = "GRANT"
	KindRevoke   = "REVOKE"
	KindDo       = "DO"
	KindCall     = "CALL"
	KindSet      = "SET"
	KindPrepare  = "PREPARE"
	KindExecute  = "EXECUTE"
	KindExplain  = "EXPLAIN"
	// KindTransaction covers BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the
	// other transaction-control statements.
	KindTransaction = "TRANSACTION"
	// KindUnknown is text the parser rejected. It is treated as the most
	// dangerous class: it writes, changes the schema, is dynamic and
	// dangerous.
	KindUnknown = "UNKNOWN"
)

// Statement is one statement the text would run. Statements that run
// inside another (a data-modifying WITH query, the body of PREPARE, the
// statement EXPLAIN ANALYZE executes) are listed as statements of their
// own, with Nested set, so a rule about DELETE sees every DELETE.
type Statement struct {
	Kind string `cel:"kind" json:"kind"`
	// Object is what a CREATE, ALTER, DROP, GRANT or REVOKE acts on:
	// TABLE, ROLE, DATABASE, SYSTEM, FUNCTION, … ("" otherwise).
	Object string `cel:"object" json:"object,omitempty"`
	// Tables are the relations the statement names, schema-qualified as
	// written ("billing.invoices") and with identifiers as PostgreSQL
	// reads them: unquoted names folded to lower case, quoted names kept.
	// Names of WITH queries in scope are not tables.
	Tables []string `cel:"tables" json:"tables,omitempty"`
	// HasWhere reports, for UPDATE, DELETE, MERGE and SELECT, a WHERE (or
	// MERGE ON) condition that refers to a column or a cursor: `WHERE
	// true` and `WHERE 1 = 1` do not count.
	HasWhere bool `cel:"has_where" json:"has_where"`
	// Functions are the functions called, lower case, without a
	// pg_catalog prefix.
	Functions []string `cel:"functions" json:"functions,omitempty"`
	// Writes: the statement modifies data (INSERT, UPDATE, DELETE,
	// MERGE, TRUNCATE, COPY FROM, SELECT INTO, REFRESH).
	Writes bool `cel:"writes" json:"writes"`
	// DDL: the statement changes the schema or privileges, as PostgreSQL's
	// log_statement = 'ddl' counts them.
	DDL bool `cel:"ddl" json:"ddl"`
	// Dynamic: the statement runs SQL that is not in the text (DO blocks,
	// EXECUTE of an unknown prepared statement, dblink, query_to_xml, …).
	// A dynamic statement may do anything, so Writes, DDL and Dangerous
	// are set too.
	Dynamic bool `cel:"dynamic" json:"dynamic"`
	// Dangerous: the statement reaches outside the database or controls
	// the server: server-side file access (COPY to or from a file or a
	// PROGRAM, pg_read_file, lo_import, …), backend control
	// (pg_terminate_backend, pg_reload_conf, …), LOAD, functions in
	// untrusted languages.
	Dangerous bool `cel:"dangerous" json:"dangerous"`
	// Nested marks a statement that runs inside the one before it.
	Nested bool `cel:"nested" json:"nested,omitempty"`
	// Prepared names the prepared statement of PREPARE, EXECUTE and
	// DEALLOCATE.
	Prepared string `cel:"prepared" json:"prepared,omitempty"`
}

// Result classifies a whole text, which may hold several statements.
type Result struct {
	Statements []Statement `cel:"statements" json:"statements"`
	// Kinds and Tables are the distinct kinds and tables of every
	// statement, in order of first appearance.
	Kinds  []string `cel:"kinds" json:"kinds"`
	Tables []string `cel:"tables" json:"tables,omitempty"`
	// The flags are true when any statement has them.
	Writes    bool `cel:"writes" json:"writes"`
	DDL       bool `cel:"ddl" json:"ddl"`
	Dynamic   bool `cel:"dynamic" json:"dynamic"`
	Dangerous bool `cel:"dangerous" json:"dangerous"`
	// Unknown is set when the text could not be parsed; Error says why.
	Unknown bool   `cel:"unknown" json:"unknown"`
	Error   string `cel:"-" json:"error,omitempty"`
}

// unknownResult is the classification of text that cannot be parsed.
func unknownResult(why string) *Result {
	s := Statement{Kind: KindUnknown, Writes: true, DDL: true, Dynamic: true, Dangerous: true}
	return &Result{Statements: []Statement{s}, Kinds: []string{KindUnknown},
		Writes: true, DDL: true, Dynamic: true, Dangerous: true, Unknown: true, Error: why}
}

// summarize fills the Result's totals from its statements.
func (r *Result) summarize() {
	for i := range r.Statements {
		s := &r.Statements[i]
		if s.Dynamic {
			s.Writes, s.DDL, s.Dangerous = true, true, true
		}
		r.Writes = r.Writes || s.Writes
		r.DDL = r.DDL || s.DDL
		r.Dynamic = r.Dynamic || s.Dynamic
		r.Dangerous = r.Dangerous || s.Dangerous
		r.Kinds = appendUnique(r.Kinds, s.Kind)
		for _, t := range s.Tables {
			r.Tables = appendUnique(r.Tables, t)
		}
	}
}

func appendUnique(list []string, s string) []string {
	for _, have := range list {
		if have == s {
			return list
		}
	}
	return append(list, s)
}

// Function families. Names are as the parser returns them: lower case,
// without the pg_catalog schema.
var (
	// dynamicFuncs run SQL given to them as a string.
	dynamicFuncs = set("dblink", "dblink_exec", "dblink_send_query", "dblink_open",
		"dblink_fetch", "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
		"ts_stat")
	// dangerousFuncs reach the server's files, processes or configuration.
	dangerousFuncs = set(
		// backend and server control
		"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
		"pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_log_backend_memory_contexts",
		"pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",
		"pg_wal_replay_pause", "pg_wal_replay_resume",
		"pg_drop_replication_slot", "pg_create_physical_replication_slot",
		"pg_create_logical_replication_slot", "pg_replication_origin_create",
		"pg_replication_origin_drop",
		// server-side files
		"pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir", "pg_ls_logdir",
		"pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir",
		"pg_ls_logicalmapdir", "pg_ls_replslotdir", "lo_import", "lo_export",
		// adminpack
		"pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls",
		// remote connections
		"dblink_connect", "dblink_connect_u")
	// untrustedLanguages run code outside the database's sandbox.
	untrustedLanguages = set("c", "internal", "plpythonu", "plpython2u", "plpython3u",
		"plperlu", "pltclu", "plsh", "plv8u")
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// funcName joins a function's name parts and drops pg_catalog.
func funcName(parts []string) string {
	name := strings.Join(parts, ".")
	return strings.TrimPrefix(name, "pg_catalog.")
}
