package resource

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// RuleAction is what a matching rule asks for.
type RuleAction string

// Rule actions.
const (
	ActionAllow  RuleAction = "allow"
	ActionBlock  RuleAction = "block"
	ActionReview RuleAction = "review"
	ActionMask   RuleAction = "mask"
)

// Policy selects connections and holds rules for them. Conditions are CEL
// expressions, compiled and type-checked when the policy is applied (by
// package policy; this package checks only the document's shape).
type Policy struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Connections selects the connections the rules apply to.
	Connections Selector `json:"connections" yaml:"connections"`
	// Presets names built-in rule sets (such as postgres-production)
	// evaluated before the policy's own rules.
	Presets []string `json:"presets,omitempty" yaml:"presets,omitempty"`
	Rules   []Rule   `json:"rules,omitempty" yaml:"rules,omitempty"`

	CreatedAt time.Time `json:"createdAt,omitzero" yaml:"-"`
	UpdatedAt time.Time `json:"updatedAt,omitzero" yaml:"-"`
}

// Selector picks connections by name (exact or a glob such as "prod-*")
// and by labels. A connection is selected when one of Names matches (or
// Names is empty) and it carries every label in Labels.
type Selector struct {
	Names  []string          `json:"names,omitempty" yaml:"names,omitempty"`
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// Rule is one condition and what to do when it holds.
type Rule struct {
	Name   string     `json:"name" yaml:"name"`
	Action RuleAction `json:"action" yaml:"action"`
	// When is a CEL expression over identity, connection, command and
	// time; it must evaluate to a bool.
	When string `json:"when" yaml:"when"`
	// Message is shown to a client whose command the rule blocks.
	Message string `json:"message,omitempty" yaml:"message,omitempty"`
	// Mask says what an action: mask rule masks, and how.
	Mask *MaskSpec `json:"mask,omitempty" yaml:"mask,omitempty"`
	// Review says who approves what an action: review rule holds, and
	// for how long a review stays open.
	Review *ReviewSpec `json:"review,omitempty" yaml:"review,omitempty"`

	// Line is where the rule's condition sits in the applied manifest,
	// for error messages; 0 when unknown.
	Line int `json:"-" yaml:"-"`
}

// MaskSpec is what a mask rule masks in results, and how. Detectors and
// patterns find values by their content in any text column; columns name
// real columns (schema.table.column), masked whatever their content and
// under any alias, and through views that select them.
type MaskSpec struct {
	// Detectors are built-in detector names (email, card, ssn, iban,
	// phone, ipv4, ipv6, aws_key_id, aws_secret, jwt, pem_private_key,
	// entropy), or "default" for all but entropy.
	Detectors []string `json:"detectors,omitempty" yaml:"detectors,omitempty"`
	// Patterns are custom RE2 regular expressions.
	Patterns []string `json:"patterns,omitempty" yaml:"patterns,omitempty"`
	Columns  []string `json:"columns,omitempty" yaml:"columns,omitempty"`
	// Strategy is redact (default), partial, hash or null.
	Strategy string `json:"strategy,omitempty" yaml:"strategy,omitempty"`
	// Keep is how many trailing letters and digits partial keeps (4).
	Keep int `json:"keep,omitempty" yaml:"keep,omitempty"`
	// Label replaces redact's "[detector]".
	Label string `json:"label,omitempty" yaml:"label,omitempty"`
}

// ReviewSpec is who approves a review rule's reviews and how.
type ReviewSpec struct {
	// Approvers are the groups whose members may approve or deny; empty
	// means identities holding the admin role.
	Approvers []string `json:"approvers,omitempty" yaml:"approvers,omitempty"`
	// Quorum is how many distinct approvers must approve (default 1).
	Quorum int `json:"quorum,omitempty" yaml:"quorum,omitempty"`
	// Timeout is how long a review waits for a decision before it
	// expires, and how long an approval not yet used stays valid
	// (a Go duration such as "15m"; default 15m).
	Timeout string `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// MaxDuration caps the window an access grant may ask for (default 12h).
	MaxDuration string `json:"maxDuration,omitempty" yaml:"maxDuration,omitempty"`
	// EndSessions ends the sessions an access grant let open when the
	// grant expires; otherwise they run on and only new ones are refused.
	EndSessions bool `json:"endSessions,omitempty" yaml:"endSessions,omitempty"`
}

// Check validates a review spec.
func (s *ReviewSpec) Check() error {
	if s.Quorum < 0 || s.Quorum > 10 {
		return fmt.Errorf("review.quorum %d: want 1 to 10", s.Quorum)
	}
	for _, g := range s.Approvers {
		if err := ValidateName("review.approvers group", g); err != nil {
			return err
		}
	}
	for name, v := range map[string]string{"review.timeout": s.Timeout, "review.maxDuration": s.MaxDuration} {
		if v == "" {
			continue
		}
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			return fmt.Errorf("%s %q: want a positive duration such as 15m or 8h", name, v)
		}
	}
	return nil
}

// Selects reports whether the selector picks connection c.
func (s Selector) Selects(c Connection) bool {
	if len(s.Names) > 0 {
		hit := false
		for _, pattern := range s.Names {
			if ok, _ := path.Match(pattern, c.Name); ok {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	for k, v := range s.Labels {
		if c.Labels[k] != v {
			return false
		}
	}
	return true
}

// Validate checks a policy's shape: names, selector, actions, and that
// every rule has a condition. CEL is checked by package policy.
func (p *Policy) Validate() error {
	if err := ValidateName("name", p.Name); err != nil {
		return err
	}
	if len(p.Connections.Names) == 0 && len(p.Connections.Labels) == 0 {
		return fmt.Errorf("policy %q: connections selects nothing: give names (globs allowed, \"*\" for every connection) or labels", p.Name)
	}
	for _, pattern := range p.Connections.Names {
		if _, err := path.Match(pattern, ""); err != nil {
			return fmt.Errorf("policy %q: connections.names: %q is not a valid glob", p.Name, pattern)
		}
	}
	for k := range p.Connections.Labels {
		if err := ValidateName("label key", k); err != nil {
			return fmt.Errorf("policy %q: connections.labels: %w", p.Name, err)
		}
	}
	if len(p.Rules) == 0 && len(p.Presets) == 0 {
		return fmt.Errorf("policy %q: has no rules and no presets", p.Name)
	}
	seen := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		if err := ValidateName("rule name", r.Name); err != nil {
			return fmt.Errorf("policy %q: rule %d: %w", p.Name, i+1, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("policy %q: rule %q is defined twice", p.Name, r.Name)
		}
		seen[r.Name] = true
		switch r.Action {
		case ActionAllow, ActionBlock, ActionReview:
			if r.Mask != nil {
				return fmt.Errorf("policy %q: rule %q: mask is only for action mask", p.Name, r.Name)
			}
			if r.Review != nil {
				if r.Action != ActionReview {
					return fmt.Errorf("policy %q: rule %q: review is only for action review", p.Name, r.Name)
				}
				if err := r.Review.Check(); err != nil {
					return fmt.Errorf("policy %q: rule %q: %w", p.Name, r.Name, err)
				}
			}
		case ActionMask:
			if r.Review != nil {
				return fmt.Errorf("policy %q: rule %q: review is only for action review", p.Name, r.Name)
			}
			if r.Mask == nil || len(r.Mask.Detectors)+len(r.Mask.Patterns)+len(r.Mask.Columns) == 0 {
				return fmt.Errorf("policy %q: rule %q: action mask needs mask.detectors, mask.patterns or mask.columns", p.Name, r.Name)
			}
			for _, c := range r.Mask.Columns {
				if parts := strings.Split(c, "."); len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
					return fmt.Errorf("policy %q: rule %q: mask column %q: want schema.table.column", p.Name, r.Name, c)
				}
			}
		default:
			return fmt.Errorf("policy %q: rule %q: action %q is invalid (want allow, block, review or mask)", p.Name, r.Name, r.Action)
		}
		if r.When == "" {
			return fmt.Errorf("policy %q: rule %q: when is required (a CEL condition; \"true\" matches everything)", p.Name, r.Name)
		}
	}
	return nil
}
