package web

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	clock := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	l := newLimiter(2, 3)
	l.now = func() time.Time { return clock }
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow("10.0.0.1"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow("10.0.0.1")
	if ok || wait != 500*time.Millisecond {
		t.Errorf("over the burst: ok=%v wait=%s, want refused for 500ms", ok, wait)
	}
	if ok, _ := l.allow("10.0.0.2"); !ok {
		t.Error("another address shares the first one's bucket")
	}
	clock = clock.Add(500 * time.Millisecond)
	if ok, _ := l.allow("10.0.0.1"); !ok {
		t.Error("a token did not come back at the rate")
	}
	clock = clock.Add(2 * time.Minute)
	l.allow("10.0.0.3")
	if _, ok := l.buckets["10.0.0.1"]; ok {
		t.Error("an idle address is kept")
	}
}

// TestSignOnRoutesAreRateLimited: past the burst, an address gets 429
// with Retry-After; authenticated routes are not limited.
func TestSignOnRoutesAreRateLimited(t *testing.T) {
	f := newFixture(t)
	var status int
	var m map[string]any
	for i := 0; i <= SignOnBurst; i++ {
		status, m, _ = f.call(t, "POST", "/api/v1/auth/federate", "", `{"token":"x"}`)
	}
	if status != http.StatusTooManyRequests || !strings.Contains(errorMessage(m), "too many sign-on requests") {
		t.Errorf("request %d = %d %q, want 429", SignOnBurst+1, status, errorMessage(m))
	}
	for i := 0; i < SignOnBurst+5; i++ {
		if status, _, _ := f.call(t, "GET", "/api/v1/whoami", f.user, ""); status != http.StatusOK {
			t.Fatalf("whoami %d = %d", i, status)
		}
	}
}
