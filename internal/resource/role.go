package resource

import "fmt"

// Role is what a token may do on the API.
type Role string

// Roles. Admins manage identities, connections and tokens; users use
// connections and manage their own tokens.
const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAdmin, RoleUser:
		return Role(s), nil
	}
	return "", fmt.Errorf("role %q is invalid (want admin or user)", s)
}

// Satisfies reports whether a holder of r may do what needs want.
func (r Role) Satisfies(want Role) bool {
	return r == RoleAdmin || r == want
}
