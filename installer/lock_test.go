package installer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestLockTakeover: a Lease held by a live holder refuses; one whose
// holder stopped renewing longer ago than its duration, or a process of
// this host that is gone, is taken over; a waiting run gets it once freed.
func TestLockTakeover(t *testing.T) {
	host := me("").Host
	tests := []struct {
		name     string
		holder   Holder
		renewed  time.Duration // ago
		wantHeld bool
	}{
		{"live holder elsewhere", Holder{Host: "other-host", PID: 4242, Command: "install 1.21"}, time.Second, true},
		{"expired holder elsewhere", Holder{Host: "other-host", PID: 4242, Command: "install 1.21"}, 2 * lockDuration, false},
		{"dead process on this host", Holder{Host: host, PID: 1 << 30, Command: "install 1.21"}, time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _ := json.Marshal(tt.holder)
			id, secs := "someone", int32(lockDuration/time.Second)
			renewed := metav1.NewMicroTime(time.Now().Add(-tt.renewed))
			cs := fake.NewClientset(&coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: StateNamespace, Annotations: map[string]string{holderAnnotation: string(raw)}},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, RenewTime: &renewed},
			})
			e := &env{resolved: &resolved{opts: Options{}.withDefaults()}, client: cs, store: &stateStore{Client: cs}}
			start := time.Now()
			err := e.acquireLock(context.Background(), "upgrade to 1.22", 0)
			var le *LockedError
			switch {
			case tt.wantHeld && !errors.As(err, &le):
				t.Fatalf("acquire: %v, want a LockedError", err)
			case tt.wantHeld:
				if !strings.Contains(err.Error(), "install 1.21") || !strings.Contains(err.Error(), "other-host") {
					t.Errorf("error %q does not name the holder", err)
				}
				if time.Since(start) > time.Second {
					t.Errorf("refusal took %s", time.Since(start))
				}
			case err != nil:
				t.Fatalf("acquire: %v", err)
			default:
				l, _ := cs.CoordinationV1().Leases(StateNamespace).Get(context.Background(), LockName, metav1.GetOptions{})
				if h := holderOf(l); h == nil || h.Command != "upgrade to 1.22" {
					t.Errorf("Lease holder %+v after takeover", h)
				}
				e.releaseLock()
				if h, _ := readLock(context.Background(), cs); h != nil {
					t.Errorf("lock still held after release: %+v", h)
				}
			}
		})
	}
}

// TestLockWaits: with a wait, a run takes the lock once the holder
// releases it, and two runs never hold it together.
func TestLockWaits(t *testing.T) {
	cs := fake.NewClientset()
	newEnv := func() *env {
		return &env{resolved: &resolved{opts: Options{Logger: slog.New(slog.DiscardHandler)}.withDefaults()}, client: cs, store: &stateStore{Client: cs}}
	}
	first, second := newEnv(), newEnv()
	if err := first.acquireLock(context.Background(), "install 1.21", 0); err != nil {
		t.Fatal(err)
	}
	if err := second.acquireLock(context.Background(), "upgrade to 1.22", 0); err == nil {
		t.Fatal("a second run took a held lock")
	}
	go func() {
		time.Sleep(1500 * time.Millisecond)
		first.releaseLock()
	}()
	start := time.Now()
	if err := second.acquireLock(context.Background(), "upgrade to 1.22", time.Minute); err != nil {
		t.Fatalf("waiting run: %v", err)
	}
	if d := time.Since(start); d < time.Second || d > 10*time.Second {
		t.Errorf("the waiting run got the lock after %s, want just after the holder released it", d)
	}
	second.releaseLock()
}
