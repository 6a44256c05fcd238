package installer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The Lease every writing operation holds, so one writer at a time
// touches the cluster.
const (
	// LockName is the Lease in StateNamespace.
	LockName = "tmbox-lock"
	// lockDuration is how long a Lease is valid without renewal: a holder
	// killed without releasing it is taken over after this.
	lockDuration = 15 * time.Second
	// holderAnnotation holds the holder's Holder, as JSON.
	holderAnnotation = "tmbox.dev/holder"
)

// Holder identifies who holds the lock.
type Holder struct {
	User    string    `json:"user"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
	// Renewed is the Lease's last renewal; Expires when another writer
	// may take it over.
	Renewed time.Time `json:"renewed"`
	Expires time.Time `json:"expires"`
}

// String names the holder for messages.
func (h Holder) String() string {
	return fmt.Sprintf("%s (%s@%s, pid %d) since %s", h.Command, h.User, h.Host, h.PID, h.Started.UTC().Format(time.RFC3339))
}

// LockedError says another tmbox holds the cluster's lock.
type LockedError struct {
	Holder Holder
	// Waited is how long this run waited for it (--wait-for-lock).
	Waited time.Duration
}

// Error says who holds the lock and since when.
func (e *LockedError) Error() string {
	msg := "another tmbox is changing this cluster: " + e.Holder.String()
	if e.Waited > 0 {
		msg += fmt.Sprintf("; waited %s", e.Waited.Round(time.Second))
	}
	return msg + " (wait for it with --wait-for-lock DURATION; a holder that stopped renewing is taken over after " + lockDuration.String() + ")"
}

// clusterLock is a held Lease, renewed until released.
type clusterLock struct {
	client   kubernetes.Interface
	identity string
	stop     context.CancelFunc
	done     sync.WaitGroup
}

// me describes this process as a holder.
func me(command string) Holder {
	h := Holder{PID: os.Getpid(), Command: command, Started: time.Now()}
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	}
	h.Host, _ = os.Hostname()
	return h
}

// acquireLock takes the cluster's Lease for command, waiting up to wait
// for another holder to finish (0: refuse at once), and renews it until
// released. It is the operation's first write.
func (e *env) acquireLock(ctx context.Context, command string, wait time.Duration) error {
	if e.lock != nil {
		return nil
	}
	if err := e.store.ensureNamespace(ctx); err != nil {
		return err
	}
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	h := me(command)
	identity := fmt.Sprintf("%s-%d-%s", h.Host, h.PID, hex.EncodeToString(id))
	start := time.Now()
	for {
		holder, err := tryLock(ctx, e.client, identity, h)
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if holder == nil {
			break
		}
		if time.Since(start) >= wait {
			le := &LockedError{Holder: *holder}
			if wait > 0 {
				le.Waited = time.Since(start)
			}
			return le
		}
		e.report(Event{Type: EventWaiting, Message: "waiting for the lock: " + holder.String()})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &clusterLock{client: e.client, identity: identity, stop: cancel}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		t := time.NewTicker(lockDuration / 3)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				if err := l.renew(lctx); err != nil {
					e.opts.Logger.Warn("renewing the cluster lock", "err", err)
				}
			}
		}
	}()
	e.lock = l
	return nil
}

// tryLock takes the Lease when it is free, ours, or expired; otherwise it
// returns its holder.
func tryLock(ctx context.Context, client kubernetes.Interface, identity string, h Holder) (*Holder, error) {
	leases := client.CoordinationV1().Leases(StateNamespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(lockDuration / time.Second)
	raw, _ := json.Marshal(h)
	cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: StateNamespace, Annotations: map[string]string{holderAnnotation: string(raw)}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &identity, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
		}
		if _, err := leases.Create(ctx, l, metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return tryLock(ctx, client, identity, h) // another took it first
			}
			return nil, err
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if other := holderOf(cur); other != nil && !other.Expires.Before(time.Now()) && !other.gone(h.Host) && *cur.Spec.HolderIdentity != identity {
		return other, nil
	}
	cur.Spec.HolderIdentity, cur.Spec.LeaseDurationSeconds, cur.Spec.AcquireTime, cur.Spec.RenewTime = &identity, &secs, &now, &now
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[holderAnnotation] = string(raw)
	if _, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return tryLock(ctx, client, identity, h)
		}
		return nil, err
	}
	return nil, nil
}

// holderOf reads a Lease's holder; nil when it is free.
func holderOf(l *coordinationv1.Lease) *Holder {
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		return nil
	}
	var h Holder
	_ = json.Unmarshal([]byte(l.Annotations[holderAnnotation]), &h)
	if h.Command == "" {
		h.Command = "tmbox (" + *l.Spec.HolderIdentity + ")"
	}
	if l.Spec.RenewTime != nil {
		h.Renewed = l.Spec.RenewTime.Time
	}
	d := lockDuration
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	h.Expires = h.Renewed.Add(d)
	return &h
}

// renew moves the Lease's renew time, if it is still ours.
func (l *clusterLock) renew(ctx context.Context) error {
	leases := l.client.CoordinationV1().Leases(StateNamespace)
	cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != l.identity {
		return errors.New("the lock was taken over")
	}
	now := metav1.NewMicroTime(time.Now())
	cur.Spec.RenewTime = &now
	_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// releaseLock stops renewing and frees the Lease (gone already after an
// uninstall, which deletes its namespace).
func (e *env) releaseLock() {
	l := e.lock
	if l == nil {
		return
	}
	e.lock = nil
	l.stop()
	l.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leases := l.client.CoordinationV1().Leases(StateNamespace)
	cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if err != nil || cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != l.identity {
		return
	}
	if err := leases.Delete(ctx, LockName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cur.ResourceVersion}}); err != nil && !apierrors.IsNotFound(err) {
		e.opts.Logger.Warn("releasing the cluster lock", "err", err)
	}
}

// readLock returns the lock's holder, nil when free or expired.
func readLock(ctx context.Context, client kubernetes.Interface) (*Holder, error) {
	l, err := client.CoordinationV1().Leases(StateNamespace).Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h := holderOf(l)
	if h == nil || h.Expires.Before(time.Now()) {
		return nil, nil
	}
	return h, nil
}

// gone reports whether the holder was a process on this host that no
// longer exists (killed): its Lease need not run out before another run
// takes it over.
func (h Holder) gone(host string) bool {
	if h.Host == "" || h.Host != host || h.PID <= 0 {
		return false
	}
	return !processAlive(h.PID)
}

// takeLock takes the cluster's lock when the run writes (lockCommand
// set). On a cluster where tmbox never ran (no tmbox-system), taking it
// would be the run's first write, before preflight could refuse: it is
// then taken just before the first phase that writes (beginOperation).
func (e *env) takeLock(ctx context.Context) error {
	if e.lockCommand == "" || e.lock != nil {
		return nil
	}
	if _, err := e.client.CoreV1().Namespaces().Get(ctx, StateNamespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		e.lockDeferred = true
		return nil
	}
	e.lockDeferred = false
	return e.acquireLock(ctx, strings.TrimSpace(e.lockCommand), e.opts.WaitForLock)
}

// takeDeferredLock takes the lock takeLock left for the first write.
func (e *env) takeDeferredLock(ctx context.Context) error {
	if !e.lockDeferred || e.lock != nil {
		return nil
	}
	e.lockDeferred = false
	return e.acquireLock(ctx, strings.TrimSpace(e.lockCommand), e.opts.WaitForLock)
}
