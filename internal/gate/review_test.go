package gate

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// TestAwaitCancelsWhenClientLeavesEarly: a client that leaves right after
// its review is opened (before the wait has read the review once) still
// cancels the review.
func TestAwaitCancelsWhenClientLeavesEarly(t *testing.T) {
	st, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &Gate{Audit: &memAudit{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Reviews: &review.Service{Store: st}}
	s := &Session{ID: "s1", Identity: resource.Identity{Name: "alice"}, Connection: resource.Connection{Name: "db"}}
	ctx, cancel := context.WithCancelCause(context.Background())
	var id string
	d := g.Await(ctx, s, &Command{Type: CommandQuery, Text: "DELETE FROM t"}, Decision{Action: Review, Rule: "p/r"}, "",
		func(r review.Review) { id = r.ID; cancel(ErrClientGone) })
	if d.Action != Block || !d.Cancelled || d.Review != id {
		t.Errorf("decision = %+v, want a cancelled refusal naming review %s", d, id)
	}
	r, err := g.Reviews.Get(context.Background(), id)
	if err != nil || r.State != review.Cancelled || r.Outcome != ErrClientGone.Error() {
		t.Errorf("review after the client left: %s %q, %v; want cancelled", r.State, r.Outcome, err)
	}
}
