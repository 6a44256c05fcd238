package installer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/settings"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Where tmbox keeps its state in the cluster.
const (
	// StateNamespace holds tmbox's state.
	StateNamespace = "tmbox-system"
	// StateConfigMap is the ConfigMap holding the state as JSON.
	StateConfigMap = "tmbox-state"
	stateKey       = "state.json"
	// journalLimit caps the operations kept in the journal.
	journalLimit = 50
)

// State is what tmbox knows about the cluster, stored in the cluster so any
// tmbox (another machine, a re-run after a crash) picks up where the last
// left off.
type State struct {
	// Release is the release the cluster fully converged to ("" if none).
	Release string `json:"release,omitempty"`
	// Components records each installed component's version and release.
	Components map[string]ComponentState `json:"components,omitempty"`
	// OptionsDigest is the digest of the options the last install used.
	OptionsDigest string `json:"optionsDigest,omitempty"`
	// Platform are the settings the release runs with: every later
	// install, upgrade hop and configure applies them unless the user
	// changes them. File settings keep their paths here; their contents
	// live in the objects tmbox made (Secrets, a ConfigMap), never here.
	Platform *settings.Settings `json:"platform,omitempty"`
	// IstioOverlay is the Istio overlay the release's compiled-in Istio
	// was rendered with: every later run renders it again unless given
	// another (or ResetPlatform). Its bytes live in OverlayConfigMap.
	IstioOverlay *KeptOverlay `json:"istioOverlay,omitempty"`
	// KindCluster names the kind cluster tmbox laid down for the release
	// ("" for an existing cluster): every later run keeps the gateway on
	// the node ports kind maps, and loads a bundle's images into its nodes.
	KindCluster string `json:"kindCluster,omitempty"`
	// URLPattern is where functions are reachable, e.g.
	// "http://{name}.{namespace}.127.0.0.1.sslip.io" ("" without a domain:
	// only inside the cluster).
	URLPattern string `json:"urlPattern,omitempty"`
	// HostAddress is, on a kind cluster tmbox made, the host address kind
	// maps to the gateway's HTTP port ("127.0.0.1:80").
	HostAddress string `json:"hostAddress,omitempty"`
	// Registry is the private registry the release's images run from
	// (an install from a bundle with --registry); later runs use it
	// unless given another, and refuse to run without a bundle.
	Registry string `json:"registry,omitempty"`
	// ImageOverrides are the image overrides the release runs with
	// (original reference → replacement): later runs keep each one while
	// their release has its original (Options.Images lays over them).
	ImageOverrides map[string]string `json:"imageOverrides,omitempty"`
	// Inventory lists, per component, every object tmbox applied: what
	// pruning and uninstall remove. It is written before objects are
	// applied, so a crash never loses track of one.
	Inventory map[string][]apply.ObjectKey `json:"inventory,omitempty"`
	// Journal records operations, oldest first.
	Journal []Operation `json:"journal,omitempty"`

	resourceVersion string
}

// ComponentState is one installed component.
type ComponentState struct {
	Version string `json:"version"`
	Release string `json:"release"`
}

// Operation is one install, upgrade hop or uninstall.
type Operation struct {
	ID       string        `json:"id"`
	Kind     string        `json:"kind"`
	From     string        `json:"from,omitempty"`
	To       string        `json:"to,omitempty"`
	Started  time.Time     `json:"started"`
	Finished *time.Time    `json:"finished,omitempty"`
	Result   string        `json:"result"`
	Error    string        `json:"error,omitempty"`
	Phases   []PhaseRecord `json:"phases,omitempty"`
}

// Operation results.
const (
	ResultRunning   = "running"
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
	// ResultCancelled marks an operation stopped by a signal (SIGINT,
	// SIGTERM) at a safe point; re-running converges.
	ResultCancelled = "cancelled"
)

// PhaseRecord is one phase of an operation.
type PhaseRecord struct {
	Name     string     `json:"name"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Result   string     `json:"result"`
	Error    string     `json:"error,omitempty"`
}

// stateStore reads and writes the State.
type stateStore struct {
	Client kubernetes.Interface
}

// Load returns the cluster's state; an empty State when tmbox never ran.
func (s *stateStore) Load(ctx context.Context) (*State, error) {
	cm, err := s.Client.CoreV1().ConfigMaps(StateNamespace).Get(ctx, StateConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tmbox state: %w", err)
	}
	st := &State{}
	if raw := cm.Data[stateKey]; raw != "" {
		if err := json.Unmarshal([]byte(raw), st); err != nil {
			return nil, fmt.Errorf("tmbox state %s/%s is corrupt: %w", StateNamespace, StateConfigMap, err)
		}
	}
	st.resourceVersion = cm.ResourceVersion
	return st, nil
}

// Save writes the state. It fails on a concurrent write (another tmbox):
// optimistic concurrency on the ConfigMap's resourceVersion.
func (s *stateStore) Save(ctx context.Context, st *State) error {
	if len(st.Journal) > journalLimit {
		st.Journal = st.Journal[len(st.Journal)-journalLimit:]
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: StateConfigMap, Namespace: StateNamespace, ResourceVersion: st.resourceVersion,
			Labels: map[string]string{apply.LabelManagedBy: apply.ManagedByValue},
		},
		Data: map[string]string{stateKey: string(raw)},
	}
	var out *corev1.ConfigMap
	if st.resourceVersion == "" {
		if err := s.ensureNamespace(ctx); err != nil {
			return err
		}
		out, err = s.Client.CoreV1().ConfigMaps(StateNamespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: apply.FieldManager})
	} else {
		out, err = s.Client.CoreV1().ConfigMaps(StateNamespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: apply.FieldManager})
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("tmbox state changed underneath this run (is another tmbox running against this cluster?): %w", err)
	}
	if err != nil {
		return fmt.Errorf("write tmbox state: %w", err)
	}
	st.resourceVersion = out.ResourceVersion
	return nil
}

// Delete removes the state and its namespace.
func (s *stateStore) Delete(ctx context.Context) error {
	err := s.Client.CoreV1().Namespaces().Delete(ctx, StateNamespace, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", StateNamespace, err)
	}
	return nil
}

func (s *stateStore) ensureNamespace(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: StateNamespace, Labels: map[string]string{apply.LabelManagedBy: apply.ManagedByValue}}}
	_, err := s.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: apply.FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s: %w", StateNamespace, err)
	}
	return nil
}

// Current returns the running operation, if the last one did not finish.
func (st *State) Current() *Operation {
	if n := len(st.Journal); n > 0 && st.Journal[n-1].Result == ResultRunning {
		return &st.Journal[n-1]
	}
	return nil
}
