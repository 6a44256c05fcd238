package installer

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tmbox/tmbox/installer/apply"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// stateClient is a fake clientset whose ConfigMaps behave like an API
// server's for optimistic concurrency. The fake's object tracker (client-go
// v0.35, NewClientset and NewSimpleClientset alike) never sets
// resourceVersion and replaces on Update whatever resourceVersion the
// object carries, so without these reactors a stale write would succeed
// and the store's concurrency check would go untested (and a second Save
// would even fail, Create being retried for want of a resourceVersion).
// Here every write of a ConfigMap gets a new resourceVersion, and an
// Update whose resourceVersion is not the stored one is a Conflict.
func stateClient(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	cs := fake.NewClientset(objs...)
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	var mu sync.Mutex
	version := 100
	next := func() string {
		mu.Lock()
		defer mu.Unlock()
		version++
		return strconv.Itoa(version)
	}
	cs.PrependReactor("create", "configmaps", func(action clienttesting.Action) (bool, runtime.Object, error) {
		cm := action.(clienttesting.CreateAction).GetObject().(*corev1.ConfigMap).DeepCopy()
		if cm.ResourceVersion != "" {
			return true, nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
		}
		cm.ResourceVersion = next()
		if err := cs.Tracker().Create(gvr, cm, action.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, cm, nil
	})
	cs.PrependReactor("update", "configmaps", func(action clienttesting.Action) (bool, runtime.Object, error) {
		cm := action.(clienttesting.UpdateAction).GetObject().(*corev1.ConfigMap).DeepCopy()
		live, err := cs.Tracker().Get(gvr, action.GetNamespace(), cm.Name)
		if err != nil {
			return true, nil, err
		}
		// An empty resourceVersion is an unconditional update, as on a
		// real server.
		if rv := live.(*corev1.ConfigMap).ResourceVersion; cm.ResourceVersion != "" && cm.ResourceVersion != rv {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), cm.Name,
				fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again (have %s, stored %s)", cm.ResourceVersion, rv))
		}
		cm.ResourceVersion = next()
		if err := cs.Tracker().Update(gvr, cm, action.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, cm, nil
	})
	return cs
}

func storedState(t *testing.T, cs *fake.Clientset) (*corev1.ConfigMap, *State) {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(StateNamespace).Get(context.Background(), StateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("state ConfigMap: %v", err)
	}
	st := &State{}
	if err := json.Unmarshal([]byte(cm.Data[stateKey]), st); err != nil {
		t.Fatalf("stored state: %v", err)
	}
	return cm, st
}

func TestStateLoadEmptyCluster(t *testing.T) {
	s := &stateStore{Client: stateClient(t)}
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if st.Release != "" || st.Components != nil || st.Inventory != nil || st.Journal != nil || st.OptionsDigest != "" || st.resourceVersion != "" {
		t.Errorf("Load on an empty cluster = %+v, want an empty State", st)
	}
	if st.Current() != nil {
		t.Errorf("Current of an empty State = %+v", st.Current())
	}
}

func TestStateSaveCreatesThenUpdates(t *testing.T) {
	ctx := context.Background()
	cs := stateClient(t)
	s := &stateStore{Client: cs}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st.Journal = []Operation{{ID: "op-1", Kind: "install", To: "1.21", Started: started, Result: ResultRunning}}
	st.Inventory = map[string][]apply.ObjectKey{"serving": {{Group: "apps", Kind: "Deployment", Namespace: "knative-serving", Name: "activator"}}}
	if err := s.Save(ctx, st); err != nil {
		t.Fatalf("first Save: %v", err)
	}

	ns, err := cs.CoreV1().Namespaces().Get(ctx, StateNamespace, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Save did not create namespace %s: %v", StateNamespace, err)
	}
	if ns.Labels[apply.LabelManagedBy] != apply.ManagedByValue {
		t.Errorf("namespace labels %v", ns.Labels)
	}
	cm, stored := storedState(t, cs)
	if cm.Labels[apply.LabelManagedBy] != apply.ManagedByValue {
		t.Errorf("ConfigMap labels %v", cm.Labels)
	}
	if st.resourceVersion == "" || st.resourceVersion != cm.ResourceVersion {
		t.Errorf("after Save the State has resourceVersion %q, the ConfigMap %q", st.resourceVersion, cm.ResourceVersion)
	}
	if len(stored.Journal) != 1 || stored.Journal[0].ID != "op-1" || !stored.Journal[0].Started.Equal(started) {
		t.Errorf("stored journal %+v", stored.Journal)
	}
	firstRV := cm.ResourceVersion

	// The same State saved again (a later phase of the run) updates.
	finished := started.Add(time.Minute)
	st.Journal[0].Result, st.Journal[0].Finished = ResultSucceeded, &finished
	st.Release = "1.21"
	st.Components = map[string]ComponentState{"serving": {Version: "1.21.0", Release: "1.21"}}
	if err := s.Save(ctx, st); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	cm, stored = storedState(t, cs)
	if cm.ResourceVersion == firstRV || st.resourceVersion != cm.ResourceVersion {
		t.Errorf("second Save: resourceVersion %q -> %q, State has %q", firstRV, cm.ResourceVersion, st.resourceVersion)
	}
	if stored.Release != "1.21" || stored.Components["serving"].Version != "1.21.0" || stored.Journal[0].Result != ResultSucceeded {
		t.Errorf("second Save stored %+v", stored)
	}
	var creates, updates int
	for _, a := range cs.Actions() {
		if a.GetResource().Resource != "configmaps" {
			continue
		}
		switch a.GetVerb() {
		case "create":
			creates++
		case "update":
			updates++
		}
	}
	if creates != 1 || updates != 1 {
		t.Errorf("%d creates, %d updates of the ConfigMap; want 1, 1", creates, updates)
	}

	// Another run loads what was saved.
	again, err := (&stateStore{Client: cs}).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Release != "1.21" || again.resourceVersion != cm.ResourceVersion || len(again.Inventory["serving"]) != 1 || again.Inventory["serving"][0].Name != "activator" {
		t.Errorf("Load after Save = %+v", again)
	}
	if again.Current() != nil {
		t.Errorf("finished operation is Current: %+v", again.Current())
	}
}

func TestStateSaveExistingNamespace(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: StateNamespace}}
	s := &stateStore{Client: stateClient(t, ns)}
	if err := s.Save(context.Background(), &State{Release: "1.20"}); err != nil {
		t.Fatalf("Save with the namespace already there: %v", err)
	}
}

func TestStateConcurrentWriters(t *testing.T) {
	tests := []struct {
		name string
		seed bool // a state exists before both runs load it
	}{
		{"both update", true},
		{"both create", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cs := stateClient(t)
			if tt.seed {
				if err := (&stateStore{Client: cs}).Save(ctx, &State{Release: "1.20"}); err != nil {
					t.Fatal(err)
				}
			}
			mine, theirs := &stateStore{Client: cs}, &stateStore{Client: cs}
			a, err := mine.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b, err := theirs.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b.Release = "theirs"
			if err := theirs.Save(ctx, b); err != nil {
				t.Fatalf("the other tmbox's Save: %v", err)
			}
			a.Release = "mine"
			err = mine.Save(ctx, a)
			if err == nil {
				t.Fatal("Save over a concurrent write succeeded")
			}
			if !strings.Contains(err.Error(), "changed underneath this run") {
				t.Errorf("Save error %q, want the concurrent-write error", err)
			}
			if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
				t.Errorf("Save error %v does not wrap the API error", err)
			}
			if _, stored := storedState(t, cs); stored.Release != "theirs" {
				t.Errorf("stored release %q, want the other tmbox's write kept", stored.Release)
			}
		})
	}
}

func TestStateJournalCapped(t *testing.T) {
	ctx := context.Background()
	cs := stateClient(t)
	s := &stateStore{Client: cs}
	st := &State{}
	for i := range journalLimit + 12 {
		st.Journal = append(st.Journal, Operation{ID: fmt.Sprintf("op-%d", i), Kind: "install", Result: ResultSucceeded})
	}
	if err := s.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	_, stored := storedState(t, cs)
	for name, j := range map[string][]Operation{"stored": stored.Journal, "in memory": st.Journal} {
		if len(j) != journalLimit {
			t.Fatalf("%s journal has %d operations, want %d", name, len(j), journalLimit)
		}
		if j[0].ID != "op-12" || j[len(j)-1].ID != fmt.Sprintf("op-%d", journalLimit+11) {
			t.Errorf("%s journal runs %s..%s, want the newest kept", name, j[0].ID, j[len(j)-1].ID)
		}
	}
	if journalLimit != 50 {
		t.Errorf("journal limit %d, want 50", journalLimit)
	}

	// Exactly at the limit nothing is dropped.
	st = &State{Journal: make([]Operation, journalLimit)}
	if err := (&stateStore{Client: stateClient(t)}).Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	if len(st.Journal) != journalLimit {
		t.Errorf("journal of %d cut to %d", journalLimit, len(st.Journal))
	}
}

func TestStateLoadCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		data    map[string]string
		wantErr bool
	}{
		{"not JSON", map[string]string{stateKey: "{release: 1.21"}, true},
		{"wrong type", map[string]string{stateKey: `{"journal": "x"}`}, true},
		{"no state key", map[string]string{}, false},
		{"empty state", map[string]string{stateKey: ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: StateConfigMap, Namespace: StateNamespace, ResourceVersion: "7"}, Data: tt.data}
			st, err := (&stateStore{Client: fake.NewClientset(cm)}).Load(context.Background())
			if !tt.wantErr {
				if err != nil || st == nil || st.Release != "" || st.resourceVersion != "7" {
					t.Errorf("Load = %+v, %v; want an empty State at resourceVersion 7", st, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load of corrupt state = %+v, want an error", st)
			}
			if !strings.Contains(err.Error(), "tmbox-system/tmbox-state") || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("error %q does not name tmbox-system/tmbox-state as corrupt", err)
			}
		})
	}
}

func TestStateLoadError(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("get", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, StateConfigMap, fmt.Errorf("rbac"))
	})
	if _, err := (&stateStore{Client: cs}).Load(context.Background()); err == nil || !apierrors.IsForbidden(err) {
		t.Errorf("Load error %v, want the API's Forbidden", err)
	}
}

func TestStateDelete(t *testing.T) {
	ctx := context.Background()
	cs := stateClient(t)
	s := &stateStore{Client: cs}
	if err := s.Delete(ctx); err != nil {
		t.Errorf("Delete with no state: %v", err)
	}
	if err := s.Save(ctx, &State{Release: "1.21"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, StateNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s after Delete: %v", StateNamespace, err)
	}
}

func TestStateCurrent(t *testing.T) {
	op := func(id, result string) Operation { return Operation{ID: id, Kind: "install", Result: result} }
	tests := []struct {
		name    string
		journal []Operation
		want    string // ID, "" for none
	}{
		{"empty", nil, ""},
		{"running", []Operation{op("a", ResultRunning)}, "a"},
		{"last running", []Operation{op("a", ResultFailed), op("b", ResultRunning)}, "b"},
		{"last succeeded", []Operation{op("a", ResultSucceeded)}, ""},
		{"last failed", []Operation{op("a", ResultFailed)}, ""},
		{"last cancelled", []Operation{op("a", ResultCancelled)}, ""},
		{"an earlier one running", []Operation{op("a", ResultRunning), op("b", ResultSucceeded)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &State{Journal: tt.journal}
			cur := st.Current()
			got := ""
			if cur != nil {
				got = cur.ID
			}
			if got != tt.want {
				t.Fatalf("Current = %q, want %q", got, tt.want)
			}
			if cur != nil {
				// It is the journal's entry, not a copy: recording a
				// phase on it records it in the State.
				cur.Phases = append(cur.Phases, PhaseRecord{Name: "apply"})
				if len(st.Journal[len(st.Journal)-1].Phases) != 1 {
					t.Error("Current returned a copy of the operation")
				}
			}
		})
	}
}
