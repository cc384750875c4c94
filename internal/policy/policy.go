// Package policy compiles Policy documents into CEL programs and evaluates
// them against a command. Conditions are type-checked when a policy is
// applied, so a misspelt field or a non-boolean condition is refused with
// its position; at run time each evaluation is cost-limited.
//
// Precedence is fixed and documented (docs/policy.md): of the rules that
// match, block beats review beats allow; among rules of one action the
// first in order (policies by name, presets before a policy's own rules,
// rules as written) names the decision. When no rule matches, the
// connection's defaultAction decides. A block or review rule whose
// condition fails to evaluate counts as matching (fail closed); an allow
// rule that fails does not.
package policy

import (
	"embed"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/mask"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/sqlparse"
)

// Input is what a condition sees. Field names in CEL are the cel tags.
type Input struct {
	Identity   Identity
	Connection Connection
	Command    Command
	Time       time.Time
}

// Identity is the `identity` variable.
type Identity struct {
	Name string `cel:"name"`
	// Kind is "user" or "service".
	Kind   string   `cel:"kind"`
	Groups []string `cel:"groups"`
}

// Connection is the `connection` variable.
type Connection struct {
	Name   string            `cel:"name"`
	Type   string            `cel:"type"`
	Labels map[string]string `cel:"labels"`
}

// Command types.
const (
	CommandConnect = "connect"
	CommandQuery   = "query"
)

// Command is the `command` variable.
type Command struct {
	// Type is "connect" when a session opens, "query" for SQL.
	Type string `cel:"type"`
	Text string `cel:"text"`
	// SQL is the classification of a SQL command; empty otherwise.
	SQL sqlparse.Result `cel:"sql"`
}

// CostLimit bounds the work of one condition's evaluation, in CEL's cost
// units (roughly one per operation or list element visited).
const CostLimit = 100_000

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

// Env returns the CEL environment conditions are checked in.
func Env() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			ext.NativeTypes(types.ParseStructTags(true),
				reflect.TypeFor[Identity](), reflect.TypeFor[Connection](), reflect.TypeFor[Command](),
				reflect.TypeFor[sqlparse.Result](), reflect.TypeFor[sqlparse.Statement]()),
			ext.Strings(),
			cel.Variable("identity", cel.ObjectType("policy.Identity")),
			cel.Variable("connection", cel.ObjectType("policy.Connection")),
			cel.Variable("command", cel.ObjectType("policy.Command")),
			cel.Variable("time", cel.TimestampType),
		)
	})
	return env, envErr
}

// Rule is a compiled rule.
type Rule struct {
	Policy  string // the policy that holds it
	Name    string // "policy/rule" in decisions and audit events
	Action  resource.RuleAction
	Message string
	// Volatile rules read the time or the command's text, so their
	// outcome for a statement's classification cannot be cached.
	Volatile bool
	// Mask is what an action: mask rule masks.
	Mask *Mask
	// Review is an action: review rule's approval settings (nil: defaults).
	Review  *resource.ReviewSpec
	program cel.Program
}

// Mask is a compiled mask rule: a scanner for its detectors and patterns
// (nil when it has none), the columns it names, and how to mask.
type Mask struct {
	Scanner *mask.Scanner
	Columns []string // schema.table.column
	Action  mask.Action
}

func compileMask(policy, name string, spec *resource.MaskSpec) (*Mask, error) {
	m := &Mask{Columns: spec.Columns, Action: mask.Action{Strategy: mask.Redact, Keep: spec.Keep, Label: spec.Label}}
	if spec.Strategy != "" {
		st, err := mask.ParseStrategy(spec.Strategy)
		if err != nil {
			return nil, fmt.Errorf("policy %q rule %q: %w", policy, name, err)
		}
		m.Action.Strategy = st
	}
	var set mask.Set
	for _, d := range spec.Detectors {
		if d == "default" {
			set |= mask.Default
			continue
		}
		det, ok := mask.ParseDetector(d)
		if !ok || det == mask.Custom {
			return nil, fmt.Errorf("policy %q rule %q: unknown detector %q (want %s, or default)", policy, name, d, strings.Join(mask.DetectorNames(), ", "))
		}
		set = set.With(det)
	}
	var res []*regexp.Regexp
	for _, p := range spec.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("policy %q rule %q: pattern %q: %w", policy, name, p, err)
		}
		res = append(res, re)
	}
	if set != 0 || len(res) > 0 {
		m.Scanner = mask.NewScanner(set, res...)
	}
	return m, nil
}

// Compiled is a policy whose conditions compiled.
type Compiled struct {
	Policy resource.Policy
	Rules  []*Rule
}

// CompileError is a condition that does not compile, with its position.
type CompileError struct {
	Policy, Rule string
	// Line is the condition's line in the applied manifest (0: unknown);
	// CELLine and Column are the position inside the condition.
	Line, CELLine, Column int
	Msg                   string
}

func (e *CompileError) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf("line %d: ", e.Line)
	}
	return fmt.Sprintf("%spolicy %q rule %q: when: %d:%d: %s", where, e.Policy, e.Rule, e.CELLine, e.Column, e.Msg)
}

// Compile checks and compiles a policy's presets and rules.
func Compile(p resource.Policy) (*Compiled, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Compiled{Policy: p}
	for _, name := range p.Presets {
		rules, err := Preset(name)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", p.Name, err)
		}
		for _, r := range rules {
			cr, err := compileRule(p.Name, name+"."+r.Name, r)
			if err != nil {
				return nil, fmt.Errorf("policy %q: preset %s: %w", p.Name, name, err)
			}
			c.Rules = append(c.Rules, cr)
		}
	}
	for _, r := range p.Rules {
		cr, err := compileRule(p.Name, r.Name, r)
		if err != nil {
			return nil, err
		}
		c.Rules = append(c.Rules, cr)
	}
	return c, nil
}

func compileRule(policy, name string, r resource.Rule) (*Rule, error) {
	e, err := Env()
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(r.When)
	if iss != nil && iss.Err() != nil {
		ce := &CompileError{Policy: policy, Rule: name, Line: r.Line, Msg: iss.Err().Error()}
		if errs := iss.Errors(); len(errs) > 0 {
			loc := errs[0].Location
			ce.CELLine, ce.Column, ce.Msg = loc.Line(), loc.Column()+1, errs[0].Message
		}
		return nil, ce
	}
	if ast.OutputType() != cel.BoolType {
		return nil, &CompileError{Policy: policy, Rule: name, Line: r.Line, CELLine: 1, Column: 1,
			Msg: fmt.Sprintf("condition is of type %s, want bool", ast.OutputType())}
	}
	prg, err := e.Program(ast, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("policy %q rule %q: %w", policy, name, err)
	}
	rule := &Rule{Policy: policy, Name: policy + "/" + name, Action: r.Action, Message: r.Message,
		Volatile: volatile(ast), Review: r.Review, program: prg}
	if r.Mask != nil {
		if rule.Mask, err = compileMask(policy, name, r.Mask); err != nil {
			return nil, err
		}
	}
	return rule, nil
}

// volatile reports whether a condition reads `time` or `command.text`.
func volatile(a *cel.Ast) bool {
	found := false
	celast.PostOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.IdentKind:
			found = found || e.AsIdent() == "time"
		case celast.SelectKind:
			sel := e.AsSelect()
			op := sel.Operand()
			found = found || (sel.FieldName() == "text" && op.Kind() == celast.IdentKind && op.AsIdent() == "command")
		}
	}))
	return found
}

//go:embed presets/*.yaml
var presetFS embed.FS

// Presets lists the built-in rule sets.
func Presets() []string {
	entries, _ := presetFS.ReadDir("presets")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name()[:len(e.Name())-len(".yaml")])
	}
	slices.Sort(names)
	return names
}

// Preset returns the rules of a built-in rule set.
func Preset(name string) ([]resource.Rule, error) {
	b, err := presetFS.ReadFile("presets/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("unknown preset %q (known presets: %v)", name, Presets())
	}
	var doc struct {
		Rules []resource.Rule `yaml:"rules"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("preset %q: %w", name, err)
	}
	if len(doc.Rules) == 0 {
		return nil, errors.New("preset " + name + " has no rules")
	}
	return doc.Rules, nil
}
