package audit

import (
	"encoding/json"
	"sort"
	"time"
)

// SessionSummary describes one session from its audit events.
type SessionSummary struct {
	ID         string    `json:"id"`
	Identity   string    `json:"identity"`
	Connection string    `json:"connection"`
	Protocol   string    `json:"protocol,omitempty"`
	Client     string    `json:"client,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"` // zero while the session is open
	Statements int       `json:"statements"`
	Refused    int       `json:"refused"`
	Reason     string    `json:"reason,omitempty"` // why it ended
}

// TimelineEntry is one step of a session: its opening, a statement (with
// its decision and, once known, its result), its end.
type TimelineEntry struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // open, statement, close
	Text     string    `json:"text,omitempty"`
	Decision string    `json:"decision,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Review   string    `json:"review,omitempty"`
	Rows     *int64    `json:"rows,omitempty"`
	SQLState string    `json:"sqlstate,omitempty"`
	Error    string    `json:"error,omitempty"`
	// DurationUS is how long the statement took, in microseconds.
	DurationUS int64 `json:"duration_us,omitempty"`
	// From the session's recording: the parameters bound, the result's
	// column names, the rows kept (a nil value is NULL) and how many more
	// the caps left out.
	Params      []*string   `json:"params,omitempty"`
	Columns     []string    `json:"columns,omitempty"`
	Result      [][]*string `json:"result,omitempty"`
	NotRecorded int64       `json:"rows_not_recorded,omitempty"`
}

// storedEvent is an event read back from its canonical JSON.
type storedEvent struct {
	Seq        uint64    `json:"seq"`
	Prev       string    `json:"prev"`
	Time       time.Time `json:"time"`
	Node       string    `json:"node"`
	Type       string    `json:"type"`
	Identity   string    `json:"identity"`
	Session    string    `json:"session"`
	Connection string    `json:"connection"`
	Protocol   string    `json:"protocol"`
	Client     string    `json:"client"`
	Command    string    `json:"command"`
	Ref        uint64    `json:"ref"`
	Decision   string    `json:"decision"`
	Rule       string    `json:"rule"`
	Review     string    `json:"review"`
	Rows       *int64    `json:"rows"`
	SQLState   string    `json:"sqlstate"`
	Error      string    `json:"error"`
	DurationUS int64     `json:"duration_us"`
	Masked     string    `json:"masked"`
	Chunk      uint64    `json:"chunk"`
	Digest     string    `json:"sha256"`
	Bytes      int64     `json:"bytes"`
}

// Sessions summarises the sessions in a node's events, newest first.
func Sessions(bodies [][]byte) []SessionSummary {
	byID := map[string]*SessionSummary{}
	for _, b := range bodies {
		var e storedEvent
		if json.Unmarshal(b, &e) != nil || e.Session == "" {
			continue
		}
		s := byID[e.Session]
		if s == nil {
			s = &SessionSummary{ID: e.Session, Start: e.Time}
			byID[e.Session] = s
		}
		switch e.Type {
		case TypeSessionOpen:
			s.Identity, s.Connection, s.Protocol, s.Client, s.Start = e.Identity, e.Connection, e.Protocol, e.Client, e.Time
			if e.Decision != "" && e.Decision != "allow" {
				s.End, s.Reason = e.Time, "refused: "+e.Error
			}
		case TypeCommand:
			if e.Review != "" && e.Ref > 0 {
				break // the run, after approval, of a statement counted already
			}
			s.Statements++
			if e.Decision == "block" {
				s.Refused++
			}
		case TypeSessionClose:
			s.End, s.Reason = e.Time, e.Error
		}
	}
	out := make([]SessionSummary, 0, len(byID))
	for _, s := range byID {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
	return out
}

// Timeline returns a session's steps in order: each statement carries its
// decision and the result its result event recorded.
func Timeline(bodies [][]byte, session string) []TimelineEntry {
	var out []TimelineEntry
	bySeq := map[uint64]int{} // command seq → index in out
	for _, b := range bodies {
		var e storedEvent
		if json.Unmarshal(b, &e) != nil || e.Session != session {
			continue
		}
		switch e.Type {
		case TypeSessionOpen:
			out = append(out, TimelineEntry{Seq: e.Seq, Time: e.Time, Kind: "open", Text: e.Identity + " on " + e.Connection + " from " + e.Client,
				Decision: e.Decision, Rule: e.Rule, Error: e.Error})
		case TypeCommand:
			bySeq[e.Seq] = len(out)
			out = append(out, TimelineEntry{Seq: e.Seq, Time: e.Time, Kind: "statement", Text: e.Command, Decision: e.Decision, Rule: e.Rule, Review: e.Review, Error: e.Error})
		case TypeResult:
			i, ok := bySeq[e.Ref]
			if !ok {
				continue
			}
			t := &out[i]
			if t.Rows != nil || t.DurationUS > 0 || t.SQLState != "" {
				// A prepared statement run again: a step of its own.
				out = append(out, TimelineEntry{Seq: e.Seq, Time: e.Time, Kind: "statement", Text: t.Text, Decision: t.Decision, Rule: t.Rule})
				t = &out[len(out)-1]
			}
			t.Rows, t.SQLState, t.DurationUS = e.Rows, e.SQLState, e.DurationUS
			if e.Error != "" {
				t.Error = e.Error
			}
		case TypeSessionClose:
			out = append(out, TimelineEntry{Seq: e.Seq, Time: e.Time, Kind: "close", Text: e.Error})
		}
	}
	return out
}
