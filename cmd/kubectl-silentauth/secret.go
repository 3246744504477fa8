package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/silentauth/silentauth/authz/keys"
)

// maxAttempts bounds the read–plan–write cycles of one command when
// another writer changes the Secret in between.
const maxAttempts = 5

// secretRef names the keys Secret in the user's namespace. Every call is
// made with the user's own credentials and is namespaced: the plugin needs
// get, create and update on that one Secret, nothing cluster-wide.
type secretRef struct {
	client    secretClient // of namespace
	namespace string
	name      string
}

func (s secretRef) String() string { return s.namespace + "/" + s.name }

// read returns the Secret and its keys; a Secret that does not exist is
// (nil, nil, nil).
func (s secretRef) read(ctx context.Context) (*corev1.Secret, []keys.Entry, error) {
	sec, err := s.client.Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, s.explain("read", err)
	}
	entries, err := keys.ParseSecret(sec.Data, sec.Annotations)
	if err != nil {
		// ParseSecret names entries and problems, never key material.
		return nil, nil, fmt.Errorf("secret %s does not parse, so nothing was changed; fix it by hand (kubectl edit secret -n %s %s):\n%w",
			s, s.namespace, s.name, err)
	}
	return sec, entries, nil
}

// missing is the error for a command that needs an existing Secret.
func (s secretRef) missing() error {
	return fmt.Errorf("secret %s not found; create the first key with: kubectl silentauth keys add -n %s", s, s.namespace)
}

// explain adds what the user can check to an API error.
func (s secretRef) explain(verb string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%s secret %s: %w (check your rights: kubectl auth can-i %s secrets -n %s)", verb, s, err, verbOf(verb), s.namespace)
	}
	return fmt.Errorf("%s secret %s: %w", verb, s, err)
}

func verbOf(v string) string {
	switch v {
	case "read":
		return "get"
	case "create":
		return "create"
	default:
		return "update"
	}
}

// mutation is one mutating command: its plan over the entries read, and
// how it is carried out.
type mutation struct {
	plan   func(p planner, cur []keys.Entry) (change, error)
	create bool // the Secret may be created (keys add)
	dryRun bool
	// confirm, when set, is the reason the change needs a confirmation
	// flag the user did not give: the change is printed, not written.
	confirm string
}

// mutate reads the Secret, plans, prints what will change and writes it
// with an Update carrying the resourceVersion it read (optimistic
// concurrency). When another writer got there first (Conflict, or
// AlreadyExists on create), it reads again and plans again, so the safety
// rules are checked against what is really there.
func mutate(ctx context.Context, s secretRef, newPlanner func() planner, out io.Writer, m mutation) error {
	for attempt := 1; ; attempt++ {
		sec, cur, err := s.read(ctx)
		if err != nil {
			return err
		}
		if sec == nil && !m.create {
			return s.missing()
		}
		p := newPlanner()
		c, err := m.plan(p, cur)
		if err != nil {
			return err
		}
		if c.empty() {
			fmt.Fprintf(out, "secret %s: nothing to change\n", s)
			return nil
		}
		verb := "update"
		if sec == nil {
			verb = "create"
		}
		fmt.Fprintf(out, "secret %s (%s):\n", s, verb)
		for _, l := range c.lines {
			fmt.Fprintf(out, "  %s\n", l)
		}
		if m.dryRun {
			fmt.Fprintln(out, "dry run: nothing written")
			return nil
		}
		if m.confirm != "" {
			return errors.New(m.confirm)
		}
		next, err := render(s, sec, c)
		if err != nil {
			return err
		}
		if sec == nil {
			_, err = s.client.Create(ctx, next, metav1.CreateOptions{FieldManager: fieldManager})
		} else {
			_, err = s.client.Update(ctx, next, metav1.UpdateOptions{FieldManager: fieldManager})
		}
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < maxAttempts {
			fmt.Fprintf(out, "secret %s changed while this command ran; reading it again\n", s)
			continue
		}
		if err != nil {
			return s.explain(verb, err)
		}
		fmt.Fprintf(out, "secret %s %sd\n", s, verb)
		return nil
	}
}

// fieldManager names the plugin in the Secret's managedFields.
const fieldManager = "kubectl-silentauth"

// render returns the Secret to write: a copy of sec (nil: a new one) with c
// made, checked by parsing it as the server will.
func render(s secretRef, sec *corev1.Secret, c change) (*corev1.Secret, error) {
	var next *corev1.Secret
	if sec == nil {
		next = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace},
			Type:       corev1.SecretTypeOpaque,
		}
	} else {
		next = sec.DeepCopy() // keeps ResourceVersion: the Update is conditional on it
	}
	data := maps.Clone(next.Data)
	if data == nil {
		data = map[string][]byte{}
	}
	ann := maps.Clone(next.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	for _, e := range c.add {
		dataKey, pem, a, err := keys.EncodeEntry(e)
		if err != nil {
			return nil, fmt.Errorf("encode key %s: %w", e.Name, err)
		}
		data[dataKey] = pem
		setAnnotations(ann, e.Name, a)
	}
	for _, e := range c.set {
		// Only the timestamps change; the key's data entry stays as it
		// was written, byte for byte.
		_, _, a, err := keys.EncodeEntry(e)
		if err != nil {
			return nil, fmt.Errorf("encode key %s: %w", e.Name, err)
		}
		setAnnotations(ann, e.Name, a)
	}
	for _, e := range c.remove {
		dataKey, _, _, err := keys.EncodeEntry(e)
		if err != nil {
			dataKey = e.Name + ".pem"
		}
		delete(data, dataKey)
		setAnnotations(ann, e.Name, nil)
	}
	if _, err := keys.ParseSecret(data, ann); err != nil {
		return nil, fmt.Errorf("after this change the Secret would not parse, so nothing was written:\n%w", err)
	}
	next.Data, next.Annotations = data, ann
	return next, nil
}

// setAnnotations replaces name's lifecycle annotations by a (nil: none).
func setAnnotations(ann map[string]string, name string, a map[string]string) {
	for _, suffix := range []string{keys.PublishedAtSuffix, keys.ActivateAtSuffix, keys.RetireAtSuffix} {
		delete(ann, keys.AnnotationPrefix+name+suffix)
	}
	maps.Copy(ann, a)
}
