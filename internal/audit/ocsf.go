package audit

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// OCSF classes and activities events map to (OCSF 1.1 numbering).
const (
	ocsfAuthentication = 3002 // Identity & Access Management
	ocsfAPIActivity    = 6003 // Application Activity
	ocsfDatastore      = 6005 // Application Activity

	ocsfLogon  = 1
	ocsfLogoff = 2
	ocsfCreate = 1
	ocsfUpdate = 3
	ocsfDelete = 4
	ocsfOther  = 99
)

// OCSF converts one event's canonical JSON to an Open Cybersecurity Schema
// Framework event: logins and sessions are Authentication (logon, logoff),
// commands and their results Datastore Activity, admin changes API
// Activity. Everything Gatehouse records that has no OCSF attribute (the
// chain's seq and prev, rule, ref, rows, sqlstate) is kept under
// "unmapped", so nothing is lost in translation.
func OCSF(body []byte) (map[string]any, error) {
	var e storedEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, err
	}
	class, activity := ocsfDatastore, ocsfOther
	switch e.Type {
	case TypeLoginFailed, TypeSessionOpen:
		class, activity = ocsfAuthentication, ocsfLogon
	case TypeSessionClose:
		class, activity = ocsfAuthentication, ocsfLogoff
	case TypeAdmin:
		class, activity = ocsfAPIActivity, ocsfUpdate
		switch {
		case strings.Contains(e.Command, "(created)"), strings.HasPrefix(e.Command, "token create"):
			activity = ocsfCreate
		case strings.HasPrefix(e.Command, "delete"), strings.HasPrefix(e.Command, "token revoke"):
			activity = ocsfDelete
		}
	}
	// Failure: a refused login, session or command, or a command that
	// failed at the target.
	status := 1
	if e.Type == TypeLoginFailed || (e.Decision != "" && e.Decision != "allow") || e.SQLState != "" || (e.Type == TypeResult && e.Error != "") {
		status = 2
	}
	out := map[string]any{
		"class_uid":    class,
		"category_uid": class / 1000,
		"activity_id":  activity,
		"type_uid":     class*100 + activity,
		"time":         e.Time.UnixMilli(),
		"severity_id":  1, // informational
		"status_id":    status,
		"metadata": map[string]any{
			"version":       "1.1.0",
			"product":       map[string]any{"name": "Gatehouse", "vendor_name": "Gatehouse"},
			"uid":           e.Node + "/" + strconv.FormatUint(e.Seq, 10),
			"original_time": e.Time.Format(time.RFC3339Nano),
		},
	}
	if e.Identity != "" {
		out["actor"] = map[string]any{"user": map[string]any{"name": e.Identity}}
	}
	if e.Session != "" {
		out["session"] = map[string]any{"uid": e.Session}
	}
	if e.Client != "" {
		out["src_endpoint"] = map[string]any{"ip": hostOf(e.Client)}
	}
	if e.Connection != "" {
		out["dst_endpoint"] = map[string]any{"name": e.Connection}
	}
	if e.Command != "" {
		out["message"] = e.Command
	}
	if e.Error != "" {
		out["status_detail"] = e.Error
	}
	if e.DurationUS > 0 {
		out["duration"] = e.DurationUS / 1000
	}
	unmapped := map[string]any{"gatehouse_type": e.Type, "seq": e.Seq, "prev": e.Prev, "node": e.Node}
	for k, v := range map[string]any{"decision": e.Decision, "rule": e.Rule, "review": e.Review, "sqlstate": e.SQLState, "protocol": e.Protocol} {
		if v != "" {
			unmapped[k] = v
		}
	}
	if e.Ref > 0 {
		unmapped["ref"] = e.Ref
	}
	if e.Rows != nil {
		unmapped["rows"] = *e.Rows
	}
	out["unmapped"] = unmapped
	return out, nil
}

// hostOf drops the port of a host:port address.
func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}
