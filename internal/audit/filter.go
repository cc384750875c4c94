package audit

import (
	"encoding/json"
	"time"
)

// Filter selects events for export. A zero field matches everything.
// Result events carry neither identity nor connection: they match when the
// command event they refer to does.
type Filter struct {
	Since, Until time.Time
	Identity     string
	Connection   string
	Session      string
	Type         string
}

// Empty reports a filter that selects everything.
func (f Filter) Empty() bool { return f == Filter{} }

// Select returns the bodies of the events f matches, in order.
func (f Filter) Select(bodies [][]byte) [][]byte {
	var out [][]byte
	commands := map[uint64]bool{} // matching command events
	for _, b := range bodies {
		var e storedEvent
		if json.Unmarshal(b, &e) != nil {
			continue
		}
		if e.Type == TypeResult {
			if !commands[e.Ref] || (f.Type != "" && f.Type != e.Type) {
				continue
			}
		} else {
			if (f.Identity != "" && e.Identity != f.Identity) || (f.Connection != "" && e.Connection != f.Connection) {
				continue
			}
			if e.Type == TypeCommand {
				commands[e.Seq] = true
			}
			if f.Type != "" && f.Type != e.Type {
				continue
			}
		}
		if (f.Session != "" && e.Session != f.Session) || (!f.Since.IsZero() && e.Time.Before(f.Since)) ||
			(!f.Until.IsZero() && !e.Time.Before(f.Until)) {
			continue
		}
		out = append(out, b)
	}
	return out
}
