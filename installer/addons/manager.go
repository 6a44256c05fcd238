package addons

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/installer/apply"
)

// DefaultMaxHistory is how many revisions of a release Helm keeps when
// Manager.MaxHistory is 0 (helm's CLI default).
const DefaultMaxHistory = 10

// helmDriver is Helm's release storage tmbox uses: Secrets in the
// release's namespace, as helm's CLI does by default.
const helmDriver = "secret"

// What Ensure did (Outcome.Action).
const (
	ActionInstalled  = "installed"
	ActionUpgraded   = "upgraded"
	ActionUnchanged  = "unchanged"
	ActionRolledBack = "rolled-back"
	ActionFailed     = "failed"
	// RecoveredPrefix starts the Action of an Ensure that first recovered
	// a release an interrupted run left pending ("recovered+installed").
	RecoveredPrefix = "recovered+"
)

// Manager installs, upgrades, rolls back, uninstalls and lists add-ons'
// Helm releases in one cluster, with Helm's SDK and its Secrets storage.
// Every call builds its own Helm action configuration per namespace, so
// a Manager may serve calls about different add-ons at once.
//
// Ensure assumes no other client operates on the same release at the
// same time (tmbox's run lock): a release it finds pending is taken as
// left by an interrupted run and recovered.
type Manager struct {
	// Config is the cluster.
	Config *rest.Config
	// Log receives what the Manager does (Info) and Helm's own messages
	// (Debug); nil discards.
	Log *slog.Logger
	// Wait waits for an add-on's objects to be ready with tmbox's waiter;
	// nil: nothing waits (Helm's own wait is not used either), as with an
	// add-on's Wait=false.
	Wait func(ctx context.Context, objs []*unstructured.Unstructured, budget time.Duration) error
	// MaxHistory is how many revisions Helm keeps per release (0:
	// DefaultMaxHistory).
	MaxHistory int
	// Images maps image references to the ones to run instead: a run's
	// private registry mapping (--registry), digests pinned. The entries
	// whose key occurs as a whole reference in an add-on's rendered
	// manifests (see apply.RewriteImages) are applied to it: to the
	// release's manifest by a Helm post-renderer, so Helm's stored
	// manifest holds the rewritten references, and to its hooks' objects
	// as Helm creates them (Helm 3 does not post-render hooks). The
	// release is labelled with a digest of those entries
	// (LabelImageMap), so a new mapping upgrades the release and the same
	// one leaves it unchanged.
	Images map[string]string
}

// Outcome is what Ensure did to one add-on.
type Outcome struct {
	// Name and Namespace are the release's.
	Name, Namespace string
	// Chart and Version are the chart's name and version.
	Chart, Version string
	// Revision is the release's revision afterwards (0 when there is
	// none).
	Revision int
	// Action is ActionInstalled, ActionUpgraded, ActionUnchanged,
	// ActionRolledBack or ActionFailed, prefixed by RecoveredPrefix when
	// a release left pending was recovered first.
	Action string
	// Message says what happened, recovery included, in a sentence or
	// two.
	Message string
}

// Status is one add-on release in the cluster.
type Status struct {
	// Name and Namespace are the release's.
	Name, Namespace string
	// Chart, Version and AppVersion are the chart's name, version and
	// app version.
	Chart, Version, AppVersion string
	// Revision is the release's latest revision.
	Revision int
	// Status is Helm's status of that revision: deployed, failed,
	// pending-install, pending-upgrade, pending-rollback, uninstalling,
	// superseded, uninstalled or unknown.
	Status string
}

// RolledBackError is an upgrade that failed and was rolled back: the
// release is at its last good configuration again.
type RolledBackError struct {
	// Name and Namespace are the release's.
	Name, Namespace string
	// Failed is the revision the failed upgrade made.
	Failed int
	// To is the revision rolled back to; Revision is the revision the
	// rollback made (Helm's rollback is a new revision).
	To, Revision int
	// Err is why the upgrade failed (the waiter's reasons when the
	// release did not become ready).
	Err error
}

// Error names the add-on and the revisions, then the cause.
func (e *RolledBackError) Error() string {
	return fmt.Sprintf("add-on %s: upgrade to revision %d failed and was rolled back to revision %d (now revision %d): %v",
		quote(e.Name), e.Failed, e.To, e.Revision, e.Err)
}

// Unwrap returns why the upgrade failed.
func (e *RolledBackError) Unwrap() error { return e.Err }

// log returns the Manager's logger, or one that discards.
func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

// maxHistory returns the revisions to keep.
func (m *Manager) maxHistory() int {
	if m.MaxHistory > 0 {
		return m.MaxHistory
	}
	return DefaultMaxHistory
}

// actionConfig builds Helm's action configuration for one call in
// namespace ("" for every namespace): Secrets storage there, Helm's kube
// client with tmbox's waiter.
func (m *Manager) actionConfig(ctx context.Context, namespace string, rewrite imageRewrite) (*action.Configuration, error) {
	if m.Config == nil {
		return nil, errors.New("add-ons: no cluster configuration")
	}
	log := m.log()
	getter := newGetter(m.Config, namespace, log)
	helmLog := func(format string, args ...any) {
		log.Debug(fmt.Sprintf(format, args...), "source", "helm", "namespace", namespace)
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(getter, namespace, helmDriver, helmLog); err != nil {
		return nil, fmt.Errorf("helm configuration for namespace %s: %w", namespace, err)
	}
	kc, ok := cfg.KubeClient.(*kube.Client)
	if !ok {
		return nil, fmt.Errorf("helm configuration for namespace %s: unexpected kube client %T", namespace, cfg.KubeClient)
	}
	kc.Namespace = namespace
	cfg.KubeClient = &waitingClient{Client: kc, ctx: ctx, wait: m.Wait, rewrite: rewrite}
	return cfg, nil
}

// Ensure makes the add-on's release match l, with Helm's actions and
// Helm's release storage in l.Addon.Namespace (created, labelled as
// tmbox's, when missing):
//
//   - a release left pending-install, pending-upgrade or
//     pending-rollback (or uninstalling) by an interrupted run is
//     recovered first: rolled back to its last deployed revision, or,
//     when it never deployed, uninstalled (a pending upgrade or rollback
//     with nothing deployed to return to is marked failed); the Outcome's
//     Message says so and its Action starts with RecoveredPrefix;
//   - no release: action.Install;
//   - a deployed release whose chart (name, version, ChartDigest) and
//     values are l's: nothing is written, no new revision ("unchanged");
//     its objects are still waited for;
//   - otherwise action.Upgrade (a failed release is upgraded too). When
//     the upgrade fails — the waiter's budget (the add-on's Timeout) runs
//     out, or an object is refused — it is rolled back with
//     action.Rollback to the last deployed revision, and the error is a
//     *RolledBackError keeping the cause (the waiter's reasons).
//
// With the add-on's Wait (and m.Wait set) every action waits with
// tmbox's waiter within the add-on's Timeout while the release is
// pending, so Helm records failed for a release that did not become
// ready. A failed install is left failed (its objects kept for
// diagnosis); the next Ensure upgrades it.
func (m *Manager) Ensure(ctx context.Context, l *Loaded) (Outcome, error) {
	a := l.Addon
	out := Outcome{Name: a.Name, Namespace: a.Namespace, Chart: l.Chart.Name(), Version: l.Chart.Metadata.Version, Action: ActionFailed}
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("add-on %s: %w", quote(a.Name), err)
	}
	rewrite, err := m.rewriteFor(l)
	if err != nil {
		return out, err
	}
	if err := m.ensureNamespace(ctx, a.Namespace); err != nil {
		return out, fmt.Errorf("add-on %s: %w", quote(a.Name), err)
	}
	cfg, err := m.actionConfig(ctx, a.Namespace, rewrite)
	if err != nil {
		return out, fmt.Errorf("add-on %s: %w", quote(a.Name), err)
	}
	hist, err := history(cfg, a.Name)
	if err != nil {
		return out, fmt.Errorf("add-on %s: %w", quote(a.Name), err)
	}
	var recovered string
	if last := latest(hist); last != nil && stuck(last.Info.Status) {
		msg, err := m.recover(cfg, a, hist)
		if err != nil {
			return out, fmt.Errorf("add-on %s: recover revision %d left %s by an interrupted run: %w", quote(a.Name), last.Version, last.Info.Status, err)
		}
		recovered = msg
		m.log().Info("add-on recovered", "addon", a.Name, "namespace", a.Namespace, "message", msg)
		if hist, err = history(cfg, a.Name); err != nil {
			return out, fmt.Errorf("add-on %s: %w", quote(a.Name), err)
		}
	}
	res, err := m.converge(ctx, cfg, l, rewrite, hist, out)
	if recovered != "" {
		res.Action = RecoveredPrefix + res.Action
		res.Message = recovered + "; then " + res.Message
		if err != nil {
			err = fmt.Errorf("%s; then: %w", recovered, err)
		}
	}
	return res, err
}

// converge installs, upgrades or leaves the release (see Ensure); hist
// has no pending revision.
func (m *Manager) converge(ctx context.Context, cfg *action.Configuration, l *Loaded, rewrite imageRewrite, hist []*release.Release, out Outcome) (Outcome, error) {
	a := l.Addon
	wait := m.Wait != nil && a.WaitEnabled()
	budget := a.Budget()
	log := m.log().With("addon", a.Name, "namespace", a.Namespace)
	last := latest(hist)
	what := fmt.Sprintf("chart %s %s", out.Chart, out.Version)

	if last != nil && last.Info.Status == release.StatusDeployed && unchanged(last, l, rewrite) {
		out.Revision, out.Action = last.Version, ActionUnchanged
		out.Message = fmt.Sprintf("%s unchanged at revision %d", what, last.Version)
		if wait {
			res, err := cfg.KubeClient.Build(bytes.NewBufferString(last.Manifest), false)
			if err != nil {
				return out, fmt.Errorf("add-on %s: objects of revision %d: %w", quote(a.Name), last.Version, err)
			}
			if err := m.Wait(ctx, unstructuredOf(res), budget); err != nil {
				return out, fmt.Errorf("add-on %s: revision %d (unchanged) is not ready: %w", quote(a.Name), last.Version, err)
			}
		}
		log.Info("add-on unchanged", "revision", last.Version)
		return out, nil
	}

	ch, err := freshChart(l.Chart)
	if err != nil {
		return out, fmt.Errorf("add-on %s: %w", quote(a.Name), err)
	}
	vals, err := deepCopy(l.Values)
	if err != nil {
		return out, fmt.Errorf("add-on %s: values: %w", quote(a.Name), err)
	}

	if last == nil || last.Info.Status == release.StatusUninstalled {
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace = a.Name, a.Namespace
		in.Labels = releaseLabels(l, rewrite)
		in.Timeout, in.Wait, in.WaitForJobs = budget, wait, wait
		if len(rewrite) > 0 {
			in.PostRenderer = rewrite
		}
		in.Replace = last != nil
		log.Info("installing add-on", "chart", out.Chart, "version", out.Version)
		rel, err := in.RunWithContext(ctx, ch, vals)
		if err != nil {
			if cur := latestOrNil(cfg, a.Name); cur != nil {
				out.Revision = cur.Version
			}
			out.Message = fmt.Sprintf("install of %s failed", what)
			return out, fmt.Errorf("add-on %s: install %s in namespace %s: %w", quote(a.Name), what, a.Namespace, err)
		}
		out.Revision, out.Action = rel.Version, ActionInstalled
		out.Message = fmt.Sprintf("installed %s as revision %d", what, rel.Version)
		log.Info("add-on installed", "revision", rel.Version)
		return out, nil
	}

	good := lastDeployed(hist)
	up := action.NewUpgrade(cfg)
	up.Namespace = a.Namespace
	up.Labels = releaseLabels(l, rewrite)
	up.Timeout, up.Wait, up.WaitForJobs = budget, wait, wait
	if len(rewrite) > 0 {
		up.PostRenderer = rewrite
	}
	up.ResetValues = true // exactly l's values, never the previous revision's
	up.MaxHistory = m.maxHistory()
	log.Info("upgrading add-on", "chart", out.Chart, "version", out.Version, "from", last.Version)
	rel, upErr := up.RunWithContext(ctx, a.Name, ch, vals)
	if upErr == nil {
		out.Revision, out.Action = rel.Version, ActionUpgraded
		out.Message = fmt.Sprintf("upgraded to %s as revision %d", what, rel.Version)
		log.Info("add-on upgraded", "revision", rel.Version)
		return out, nil
	}
	cur := latestOrNil(cfg, a.Name)
	if cur == nil || cur.Version <= last.Version {
		// Refused before Helm stored a revision (rendering, the schema,
		// validation): nothing changed, nothing to roll back.
		out.Revision = last.Version
		out.Message = fmt.Sprintf("upgrade to %s refused; revision %d left as it was", what, last.Version)
		return out, fmt.Errorf("add-on %s: upgrade refused, revision %d left as it was: %w", quote(a.Name), last.Version, upErr)
	}
	failed := cur.Version
	if rel != nil && rel.Version > 0 {
		failed = rel.Version
	}
	out.Revision = failed
	if good == nil {
		out.Message = fmt.Sprintf("upgrade to %s failed (revision %d); no deployed revision to roll back to", what, failed)
		return out, fmt.Errorf("add-on %s: upgrade to revision %d failed, and no revision was ever deployed to roll back to: %w", quote(a.Name), failed, upErr)
	}
	if ctx.Err() != nil {
		out.Message = fmt.Sprintf("upgrade to %s interrupted (revision %d)", what, failed)
		return out, fmt.Errorf("add-on %s: upgrade to revision %d interrupted, not rolled back (the next run recovers or retries it): %w", quote(a.Name), failed, upErr)
	}
	log.Info("add-on upgrade failed: rolling back", "failed", failed, "to", good.Version, "error", upErr)
	rb := action.NewRollback(cfg)
	rb.Version = good.Version
	rb.Timeout, rb.Wait, rb.WaitForJobs = budget, wait, wait
	rb.MaxHistory = m.maxHistory()
	rbErr := rb.Run(a.Name)
	now := failed + 1
	if cur := latestOrNil(cfg, a.Name); cur != nil {
		now = cur.Version
	}
	out.Revision = now
	if rbErr != nil {
		out.Message = fmt.Sprintf("upgrade to %s failed (revision %d) and the rollback to revision %d failed too", what, failed, good.Version)
		return out, errors.Join(
			fmt.Errorf("add-on %s: upgrade to revision %d failed: %w", quote(a.Name), failed, upErr),
			fmt.Errorf("add-on %s: rollback to revision %d failed too: %w", quote(a.Name), good.Version, rbErr))
	}
	out.Action = ActionRolledBack
	out.Message = fmt.Sprintf("upgrade to %s failed (revision %d): rolled back to revision %d (revision %d)", what, failed, good.Version, now)
	log.Info("add-on rolled back", "to", good.Version, "revision", now)
	return out, &RolledBackError{Name: a.Name, Namespace: a.Namespace, Failed: failed, To: good.Version, Revision: now, Err: upErr}
}

// recover deals with a release whose last revision an interrupted run
// left pending (or uninstalling), and says what it did.
func (m *Manager) recover(cfg *action.Configuration, a Addon, hist []*release.Release) (string, error) {
	last := latest(hist)
	status := last.Info.Status
	good := lastDeployed(hist)
	left := fmt.Sprintf("revision %d was left %s by an interrupted run", last.Version, status)
	switch {
	case status == release.StatusUninstalling:
		if err := m.uninstall(cfg, a.Name, true); err != nil {
			return "", err
		}
		return left + ": finished uninstalling it", nil
	case good != nil:
		last.SetStatus(release.StatusFailed, fmt.Sprintf("left %s by an interrupted run; tmbox rolled back to revision %d", status, good.Version))
		if err := cfg.Releases.Update(last); err != nil {
			return "", fmt.Errorf("mark revision %d failed: %w", last.Version, err)
		}
		rb := action.NewRollback(cfg)
		rb.Version = good.Version
		rb.Timeout = a.Budget()
		rb.MaxHistory = m.maxHistory()
		if err := rb.Run(a.Name); err != nil {
			return "", fmt.Errorf("roll back to revision %d: %w", good.Version, err)
		}
		now := "a new revision"
		if cur := latestOrNil(cfg, a.Name); cur != nil {
			now = fmt.Sprintf("revision %d", cur.Version)
		}
		return fmt.Sprintf("%s: rolled back to revision %d (%s)", left, good.Version, now), nil
	case status == release.StatusPendingInstall:
		if err := m.uninstall(cfg, a.Name, false); err != nil {
			return "", err
		}
		return left + " and never deployed: uninstalled it", nil
	default:
		last.SetStatus(release.StatusFailed, fmt.Sprintf("left %s by an interrupted run, with no deployed revision to return to; marked failed by tmbox", status))
		if err := cfg.Releases.Update(last); err != nil {
			return "", fmt.Errorf("mark revision %d failed: %w", last.Version, err)
		}
		return left + " with no deployed revision to roll back to: marked it failed", nil
	}
}

// uninstall runs Helm's uninstall of an existing release, purging its
// history, waiting for its objects to be gone. hooks runs its delete
// hooks (not for a release that never deployed).
func (m *Manager) uninstall(cfg *action.Configuration, name string, hooks bool) error {
	un := action.NewUninstall(cfg)
	un.Wait, un.Timeout = true, DefaultTimeout
	un.DisableHooks = !hooks
	if _, err := un.Run(name); err != nil {
		return fmt.Errorf("uninstall release %s: %w", name, err)
	}
	return nil
}

// Uninstall removes the add-on's release with Helm's uninstall (its
// objects, then its history), waiting until its objects are gone. A
// release that does not exist is no error; neither is a missing
// namespace.
func (m *Manager) Uninstall(ctx context.Context, name, namespace string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("uninstall add-on %s: %w", quote(name), err)
	}
	cfg, err := m.actionConfig(ctx, namespace, nil)
	if err != nil {
		return fmt.Errorf("uninstall add-on %s: %w", quote(name), err)
	}
	hist, err := history(cfg, name)
	if err != nil {
		return fmt.Errorf("uninstall add-on %s: %w", quote(name), err)
	}
	if len(hist) == 0 {
		m.log().Debug("add-on not installed", "addon", name, "namespace", namespace)
		return nil
	}
	if err := m.uninstall(cfg, name, true); err != nil {
		return fmt.Errorf("uninstall add-on %s in namespace %s: %w", quote(name), namespace, err)
	}
	m.log().Info("add-on uninstalled", "addon", name, "namespace", namespace)
	return nil
}

// List returns the latest revision of every Helm release tmbox manages
// (labelled LabelManagedBy=tmbox), in every namespace, whatever its
// status, sorted by namespace and name.
func (m *Manager) List(ctx context.Context) ([]Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list add-ons: %w", err)
	}
	cfg, err := m.actionConfig(ctx, "", nil)
	if err != nil {
		return nil, fmt.Errorf("list add-ons: %w", err)
	}
	ls := action.NewList(cfg)
	ls.AllNamespaces, ls.All = true, true
	ls.StateMask = action.ListAll
	ls.Selector = LabelManagedBy + "=" + ManagedByValue
	rels, err := ls.Run()
	if err != nil {
		return nil, fmt.Errorf("list add-ons: %w", err)
	}
	out := make([]Status, 0, len(rels))
	for _, r := range rels {
		s := Status{Name: r.Name, Namespace: r.Namespace, Revision: r.Version}
		if r.Info != nil {
			s.Status = r.Info.Status.String()
		}
		if r.Chart != nil && r.Chart.Metadata != nil {
			s.Chart, s.Version, s.AppVersion = r.Chart.Metadata.Name, r.Chart.Metadata.Version, r.Chart.Metadata.AppVersion
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// ensureNamespace creates the namespace, labelled as tmbox's, when it
// does not exist (an existing one is left as it is).
func (m *Manager) ensureNamespace(ctx context.Context, name string) error {
	client, err := kubernetes.NewForConfig(m.Config)
	if err != nil {
		return err
	}
	if _, err := client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{apply.LabelManagedBy: apply.ManagedByValue}}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: apply.FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	m.log().Info("namespace created", "namespace", name)
	return nil
}

// history returns the release's revisions, oldest first; none when it
// does not exist.
func history(cfg *action.Configuration, name string) ([]*release.Release, error) {
	hist, err := cfg.Releases.History(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history of release %s: %w", name, err)
	}
	releaseutil.SortByRevision(hist)
	return hist, nil
}

// latest returns the last revision of a sorted history, nil if empty.
func latest(hist []*release.Release) *release.Release {
	if len(hist) == 0 {
		return nil
	}
	return hist[len(hist)-1]
}

// latestOrNil reads the release's last revision, nil on error.
func latestOrNil(cfg *action.Configuration, name string) *release.Release {
	hist, err := history(cfg, name)
	if err != nil {
		return nil
	}
	return latest(hist)
}

// lastDeployed returns the newest deployed revision of a sorted
// history, nil if none.
func lastDeployed(hist []*release.Release) *release.Release {
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].Info != nil && hist[i].Info.Status == release.StatusDeployed {
			return hist[i]
		}
	}
	return nil
}

// stuck reports whether a status is one an interrupted run leaves.
func stuck(s release.Status) bool {
	return s.IsPending() || s == release.StatusUninstalling
}

// releaseLabels are the release labels tmbox sets.
func releaseLabels(l *Loaded, rewrite imageRewrite) map[string]string {
	labels := map[string]string{LabelManagedBy: ManagedByValue, LabelChartDigest: digestLabel(l.ChartDigest)}
	if v := rewrite.label(); v != "" {
		labels[LabelImageMap] = v
	}
	return labels
}

// digestLabel is a digest's hex cut to a label value's 63 characters.
func digestLabel(digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	if len(hex) > 63 {
		hex = hex[:63]
	}
	return hex
}

// unchanged reports whether a release revision has l's chart (name,
// version, digest), values and image mapping, and is tmbox's.
func unchanged(rel *release.Release, l *Loaded, rewrite imageRewrite) bool {
	if rel.Chart == nil || rel.Chart.Metadata == nil || l.Chart.Metadata == nil {
		return false
	}
	return rel.Chart.Metadata.Name == l.Chart.Metadata.Name &&
		rel.Chart.Metadata.Version == l.Chart.Metadata.Version &&
		rel.Labels[LabelManagedBy] == ManagedByValue &&
		rel.Labels[LabelChartDigest] == digestLabel(l.ChartDigest) &&
		rel.Labels[LabelImageMap] == rewrite.label() &&
		valuesEqual(rel.Config, l.Values)
}
