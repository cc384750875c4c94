package web

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/review"
)

// TestReviewsAuthorization: who may see, decide and cancel a review.
// alice is in dba (the approver group), bob is in no group.
func TestReviewsAuthorization(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	carols, err := f.api.Reviews.Request(ctx, review.Review{Kind: review.KindCommand, Requester: "carol", Connection: "db",
		Command: "DELETE FROM t", Approvers: []string{"dba"}})
	if err != nil {
		t.Fatal(err)
	}
	alices, _ := f.api.Reviews.Request(ctx, review.Review{Kind: review.KindCommand, Requester: "alice", Connection: "db",
		Command: "DELETE FROM u", Approvers: []string{"dba"}})
	path := "/api/v1/reviews/" + carols.ID

	// bob neither asked nor may decide: the review does not exist for him.
	if code, _, raw := f.call(t, "GET", "/api/v1/reviews", f.other, ""); code != 200 || strings.Contains(raw, carols.ID) {
		t.Errorf("bob lists %d: %s", code, raw)
	}
	for _, c := range []struct{ method, path string }{{"GET", path}, {"POST", path + "/approve"}, {"POST", path + "/deny"}, {"POST", path + "/cancel"}} {
		if code, _, raw := f.call(t, c.method, c.path, f.other, ""); code != http.StatusNotFound {
			t.Errorf("bob %s %s = %d %s, want 404", c.method, c.path, code, raw)
		}
	}
	// alice may decide carol's review, not her own, and may not cancel
	// carol's.
	if code, _, raw := f.call(t, "GET", "/api/v1/reviews", f.user, ""); code != 200 || !strings.Contains(raw, carols.ID) || strings.Contains(raw, `"match"`) {
		t.Errorf("alice lists %d: %s", code, raw)
	}
	if code, m, _ := f.call(t, "POST", "/api/v1/reviews/"+alices.ID+"/approve", f.user, ""); code != http.StatusForbidden || !strings.Contains(errorMessage(m), "cannot decide it") {
		t.Errorf("alice approving her own review = %d %v", code, m)
	}
	if code, m, _ := f.call(t, "POST", path+"/cancel", f.user, ""); code != http.StatusForbidden || !strings.Contains(errorMessage(m), "only carol") {
		t.Errorf("alice cancelling carol's review = %d %v", code, m)
	}
	if code, m, _ := f.call(t, "POST", path+"/approve", f.user, `{"reason":"ok"}`); code != 200 || m["state"] != "approved" {
		t.Errorf("alice approving = %d %v", code, m)
	}
	if code, m, _ := f.call(t, "POST", path+"/deny", f.user, ""); code != http.StatusConflict || !strings.Contains(errorMessage(m), "is approved") {
		t.Errorf("deciding an approved review = %d %v", code, m)
	}
	// The requester cancels her own; an admin may cancel any.
	if code, m, _ := f.call(t, "POST", "/api/v1/reviews/"+alices.ID+"/cancel", f.user, `{"reason":"wrong table"}`); code != 200 || m["outcome"] != "cancelled by alice: wrong table" {
		t.Errorf("alice cancelling her review = %d %v", code, m)
	}
	if code, _, _ := f.call(t, "GET", "/api/v1/reviews?state=bogus", f.admin, ""); code != http.StatusBadRequest {
		t.Errorf("state=bogus = %d, want 400", code)
	}
	if code, _, raw := f.call(t, "GET", "/api/v1/reviews?state=all", f.admin, ""); code != 200 || !strings.Contains(raw, carols.ID) || !strings.Contains(raw, alices.ID) {
		t.Errorf("admin lists all = %d %s", code, raw)
	}
}
