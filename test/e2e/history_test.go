package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
)

// history fetches the node's GET /api/v1/history.
func (n *lbNode) history() (*admin.History, error) {
	resp, err := n.client.Get("http://" + labAdmin + "/api/v1/history")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var h admin.History
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return nil, err
	}
	return &h, nil
}

// TestHAHistoryRecordsFailover: after the master is killed, the backup's
// history (what the dashboard's timeline draws) has its backup → master
// change, stamped with the time it took over.
func TestHAHistoryRecordsFailover(t *testing.T) {
	t.Parallel()
	l := newHALab(t, haOpts{})
	l.startAll()
	// lb2 has sampled itself as backup.
	waitUntil(t, 20*time.Second, "lb2's history to show it as backup", func() (bool, string) {
		h, err := l.nodes["lb2"].history()
		if err != nil {
			return false, err.Error()
		}
		return len(h.HA) == 1 && h.HA[0].State == "backup", fmt.Sprintf("%+v", h.HA)
	})
	fault := time.Now()
	l.nodes["lb1"].kill9()
	l.waitRoles("lb2", 10*time.Second)
	var got admin.HATransition
	waitUntil(t, 20*time.Second, "lb2's history to show backup → master", func() (bool, string) {
		h, err := l.nodes["lb2"].history()
		if err != nil {
			return false, err.Error()
		}
		for _, g := range h.HA {
			for _, tr := range g.Transitions {
				if g.Group == haGroupName && tr.From == "backup" && tr.To == "master" {
					got = tr
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%+v", h.HA)
	})
	since := l.haGroupOf("lb2").Since
	if !got.Time.Equal(since) || got.Time.Before(fault) || got.Changes != 1 {
		t.Errorf("transition: got %+v; want one change at %v, when lb2 became master (after the kill at %v)", got, since, fault)
	}
}
