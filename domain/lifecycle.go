package domain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/looplab/fsm"
	"go.yaml.in/yaml/v3"
)

// Definition is a lifecycle definition file as written in schemas/lifecycles.
// The file is the documentation of the lifecycle; Lifecycle is its compiled,
// validated form.
type Definition struct {
	Name            string          `yaml:"name" json:"name"`
	Version         int             `yaml:"version" json:"version"`
	Description     string          `yaml:"description" json:"description,omitempty"`
	Initial         string          `yaml:"initial" json:"initial"`
	Final           []string        `yaml:"final" json:"final,omitempty"`
	MinReasonLength int             `yaml:"min_reason_length" json:"min_reason_length"`
	StateFromStatus bool            `yaml:"state_from_status" json:"state_from_status,omitempty"`
	Identity        *IdentityRule   `yaml:"identity" json:"identity,omitempty"`
	Review          *ReviewStates   `yaml:"review" json:"review,omitempty"`
	States          []StateDef      `yaml:"states" json:"states"`
	Transitions     []TransitionDef `yaml:"transitions" json:"transitions"`
}

// StateDef names and explains one state.
type StateDef struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description,omitempty"`
}

// TransitionDef is one transition: an event name, the states it leaves from
// and the state it goes to.
type TransitionDef struct {
	Event       string   `yaml:"event" json:"event"`
	From        []string `yaml:"from" json:"from"`
	To          string   `yaml:"to" json:"to"`
	Reason      string   `yaml:"reason" json:"reason,omitempty"` // "required" or "optional" (default)
	Roles       []string `yaml:"roles" json:"roles,omitempty"`   // empty: any authenticated caller
	Guards      []string `yaml:"guards" json:"guards,omitempty"`
	Description string   `yaml:"description" json:"description,omitempty"`
}

// IdentityRule makes a lifecycle refuse a registration whose identity
// document belongs to a customer that reached one of these states.
type IdentityRule struct {
	RefuseIfPreviously []string `yaml:"refuse_if_previously" json:"refuse_if_previously,omitempty"`
}

// ReviewStates maps the review workflow of seed 003 onto a lifecycle's states.
// A lifecycle without it does not support the review workflow.
type ReviewStates struct {
	InReview         string `yaml:"in_review" json:"in_review"`
	AwaitingApproval string `yaml:"awaiting_approval" json:"awaiting_approval,omitempty"`
	Approved         string `yaml:"approved" json:"approved"`
	Rejected         string `yaml:"rejected" json:"rejected"`
	Resubmission     string `yaml:"resubmission" json:"resubmission"`
}

// Transition is a move a caller may make: the event that names it and the
// status it leads to.
type Transition struct {
	Event          string `json:"event"`
	To             string `json:"to"`
	ReasonRequired bool   `json:"reason_required"`
}

// Guard names understood in definition files. Each is a rule that needs more
// than the current state to decide.
const (
	// GuardFourEyes: the actor must not be the one who moved the case into the
	// transition's source state.
	GuardFourEyes = "four_eyes"
	// GuardRetryAllowed: the last rejection must not have been FINAL.
	GuardRetryAllowed = "retry_allowed"
)

var knownGuards = map[string]bool{GuardFourEyes: true, GuardRetryAllowed: true}

// RoleSuperuser may do everything, in every company.
const RoleSuperuser = "superuser"

// Lifecycle is a validated definition loaded into looplab/fsm.
type Lifecycle struct {
	def       Definition
	fsmEvents fsm.Events
	// byEventFrom finds the definition of an event fired from a state: one
	// event name may appear in several transitions with different sources.
	byEventFrom map[string]map[string]*TransitionDef
	states      map[string]bool
	final       map[string]bool
}

// ParseDefinition reads and validates one definition file.
func ParseDefinition(data []byte) (*Lifecycle, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var def Definition
	if err := dec.Decode(&def); err != nil {
		return nil, fmt.Errorf("lifecycle definition: %w", err)
	}
	return NewLifecycle(def)
}

// NewLifecycle validates a definition and compiles it.
func NewLifecycle(def Definition) (*Lifecycle, error) {
	l := &Lifecycle{
		def:         def,
		byEventFrom: map[string]map[string]*TransitionDef{},
		states:      map[string]bool{},
		final:       map[string]bool{},
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if def.Name == "" {
		fail("name is empty")
	}
	if def.Version < 1 {
		fail("version must be 1 or more")
	}
	if def.MinReasonLength < 0 {
		fail("min_reason_length is negative")
	}
	for _, s := range def.States {
		if s.Name == "" || l.states[s.Name] {
			fail("state %q is empty or listed twice", s.Name)
		}
		l.states[s.Name] = true
	}
	checkState := func(where, s string) {
		if !l.states[s] {
			fail("%s names unknown state %q", where, s)
		}
	}
	checkState("initial", def.Initial)
	for _, s := range def.Final {
		checkState("final", s)
		l.final[s] = true
	}
	if def.Identity != nil {
		for _, s := range def.Identity.RefuseIfPreviously {
			checkState("identity.refuse_if_previously", s)
		}
	}
	if r := def.Review; r != nil {
		for _, s := range []string{r.InReview, r.Approved, r.Rejected, r.Resubmission} {
			checkState("review", s)
		}
		if r.AwaitingApproval != "" {
			checkState("review.awaiting_approval", r.AwaitingApproval)
		}
	}
	for i := range def.Transitions {
		t := &def.Transitions[i]
		where := fmt.Sprintf("transition %q", t.Event)
		if t.Event == "" {
			fail("transition %d has no event name", i)
		}
		if len(t.From) == 0 {
			fail("%s has no source state", where)
		}
		checkState(where, t.To)
		switch t.Reason {
		case "", "optional", "required":
		default:
			fail("%s: reason must be required or optional, not %q", where, t.Reason)
		}
		for _, g := range t.Guards {
			if !knownGuards[g] {
				fail("%s: unknown guard %q", where, g)
			}
		}
		if l.byEventFrom[t.Event] == nil {
			l.byEventFrom[t.Event] = map[string]*TransitionDef{}
		}
		for _, from := range t.From {
			checkState(where, from)
			if l.byEventFrom[t.Event][from] != nil {
				fail("%s from %s is defined twice", where, from)
			}
			l.byEventFrom[t.Event][from] = t
			// Leaving a final state is the exception a compliance team allows
			// only to a named role and with a written reason.
			if l.final[from] && (len(t.Roles) == 0 || t.Reason != "required") {
				fail("%s leaves final state %s without restricting roles and requiring a reason", where, from)
			}
		}
		l.fsmEvents = append(l.fsmEvents, fsm.EventDesc{Name: t.Event, Src: t.From, Dst: t.To})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("lifecycle %s v%d: %s", def.Name, def.Version, strings.Join(errs, "; "))
	}
	return l, nil
}

// Name, Version and Definition describe the lifecycle.
func (l *Lifecycle) Name() string           { return l.def.Name }
func (l *Lifecycle) Version() int           { return l.def.Version }
func (l *Lifecycle) Definition() Definition { return l.def }
func (l *Lifecycle) Initial() string        { return l.def.Initial }
func (l *Lifecycle) IsFinal(state string) bool {
	return l.final[state]
}
func (l *Lifecycle) HasState(state string) bool { return l.states[state] }

// Review returns the review-workflow mapping, or nil.
func (l *Lifecycle) Review() *ReviewStates { return l.def.Review }

// TransitionRequest is what a guard needs to decide a transition.
type TransitionRequest struct {
	Customer *Customer
	Actor    Actor
	Roles    []string
	Reason   string
}

func hasRole(roles []string, role string) bool { return slices.Contains(roles, role) }

// usableBy reports whether a caller with roles may fire the transition: it
// names no role, or the caller has one of them, or is a superuser.
func (t *TransitionDef) usableBy(roles []string) bool {
	return len(t.Roles) == 0 || hasRole(roles, RoleSuperuser) || slices.ContainsFunc(t.Roles, func(r string) bool { return hasRole(roles, r) })
}

// permitted checks the rules of a transition that the state alone does not
// decide: roles, reason, guards.
func (l *Lifecycle) permitted(t *TransitionDef, req TransitionRequest) error {
	if !t.usableBy(req.Roles) {
		return fmt.Errorf("%w: %s needs role %s", ErrForbidden, t.Event, strings.Join(t.Roles, " or "))
	}
	if t.Reason == "required" {
		reason := strings.TrimSpace(req.Reason)
		if reason == "" {
			return &FieldError{Field: "reason", Detail: fmt.Sprintf("%s to %s needs a reason", t.Event, t.To), Err: ErrReasonRequired}
		}
		if utf8.RuneCountInString(reason) < l.def.MinReasonLength {
			return &FieldError{Field: "reason", Detail: fmt.Sprintf("a reason for %s must be more than %d characters", t.To, l.def.MinReasonLength-1), Err: ErrReasonTooShort}
		}
	}
	for _, g := range t.Guards {
		if err := checkGuard(g, req); err != nil {
			return err
		}
	}
	return nil
}

func checkGuard(name string, req TransitionRequest) error {
	c := req.Customer
	switch name {
	case GuardFourEyes:
		if c.StatusChangedBy != "" && c.StatusChangedBy == req.Actor.ID {
			return ErrFourEyes
		}
	case GuardRetryAllowed:
		if c.Rejection != nil && c.Rejection.Type == RejectFinal {
			return ErrFinalRejection
		}
	}
	return nil
}

// Fire runs event from the customer's status through the state machine and
// returns the definition of the transition taken. The FSM refuses events the
// definition does not allow from the current state; its before-event callback
// applies roles, reasons and guards.
func (l *Lifecycle) Fire(ctx context.Context, event string, req TransitionRequest) (*TransitionDef, error) {
	from := req.Customer.Status
	var taken *TransitionDef
	machine := fsm.NewFSM(from, l.fsmEvents, fsm.Callbacks{
		"before_event": func(_ context.Context, e *fsm.Event) {
			t := l.byEventFrom[e.Event][e.Src]
			if err := l.permitted(t, req); err != nil {
				e.Cancel(err)
				return
			}
			taken = t
		},
	})
	err := machine.Event(ctx, event)
	var canceled fsm.CanceledError
	switch {
	case err == nil:
		return taken, nil
	case errors.As(err, &canceled):
		return nil, canceled.Err
	default:
		return nil, &TransitionError{Lifecycle: l.def.Name, From: from, Requested: event, Field: "event", Allowed: l.Allowed(from, req.Roles)}
	}
}

// ResolveTarget finds the event that moves from the customer's status to the
// target status, for the inline status change of seed 000.
func (l *Lifecycle) ResolveTarget(from, target string, roles []string) (string, error) {
	for _, t := range l.Allowed(from, roles) {
		if t.To == target {
			return t.Event, nil
		}
	}
	return "", &TransitionError{Lifecycle: l.def.Name, From: from, Requested: target, Field: "status", Allowed: l.Allowed(from, roles)}
}

// Allowed lists the transitions the FSM offers from a state that the given
// roles may use, sorted by event name.
func (l *Lifecycle) Allowed(from string, roles []string) []Transition {
	machine := fsm.NewFSM(from, l.fsmEvents, nil)
	var out []Transition
	for _, event := range machine.AvailableTransitions() {
		t := l.byEventFrom[event][from]
		if !t.usableBy(roles) {
			continue
		}
		out = append(out, Transition{Event: t.Event, To: t.To, ReasonRequired: t.Reason == "required"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Event < out[j].Event })
	return out
}

// Permits reports whether the definition has event from -> to. Tests and
// auditors use it to check stored transitions.
func (l *Lifecycle) Permits(event, from, to string) bool {
	t := l.byEventFrom[event][from]
	return t != nil && t.To == to
}

// TransitionFor returns the definition of event from a state, or nil.
func (l *Lifecycle) TransitionFor(event, from string) *TransitionDef {
	return l.byEventFrom[event][from]
}

// Mermaid renders the lifecycle as a Mermaid state diagram, annotated with
// what the bare FSM cannot show: required reasons, roles and guards.
func (l *Lifecycle) Mermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	fmt.Fprintf(&b, "    %%%% %s v%d: %s\n", l.def.Name, l.def.Version, l.def.Description)
	fmt.Fprintf(&b, "    [*] --> %s\n", mermaidID(l.def.Initial))
	for _, t := range l.def.Transitions {
		label := t.Event
		var notes []string
		if t.Reason == "required" {
			notes = append(notes, "reason")
		}
		if len(t.Roles) > 0 {
			notes = append(notes, strings.Join(t.Roles, "/"))
		}
		notes = append(notes, t.Guards...)
		if len(notes) > 0 {
			label += " [" + strings.Join(notes, ", ") + "]"
		}
		for _, from := range t.From {
			fmt.Fprintf(&b, "    %s --> %s: %s\n", mermaidID(from), mermaidID(t.To), label)
		}
	}
	for _, s := range l.def.Final {
		fmt.Fprintf(&b, "    %s --> [*]\n", mermaidID(s))
	}
	return b.String()
}

func mermaidID(state string) string { return strings.ReplaceAll(state, " ", "_") }

// Lifecycles holds every version of every lifecycle definition. Streams name
// the version they were created under, so replay keeps using the rules that
// were in force.
type Lifecycles struct {
	byName      map[string]map[int]*Lifecycle
	defaultName string
}

// LoadLifecycles parses every *.yaml file of a folder.
func LoadLifecycles(fsys fs.FS, defaultName string) (*Lifecycles, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read lifecycle definitions: %w", err)
	}
	var all []*Lifecycle
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".yaml" {
			continue
		}
		data, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		l, err := ParseDefinition(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		all = append(all, l)
	}
	return NewLifecycles(defaultName, all...)
}

// NewLifecycles indexes compiled lifecycles and checks the default exists.
func NewLifecycles(defaultName string, all ...*Lifecycle) (*Lifecycles, error) {
	ls := &Lifecycles{byName: map[string]map[int]*Lifecycle{}, defaultName: defaultName}
	for _, l := range all {
		if ls.byName[l.Name()] == nil {
			ls.byName[l.Name()] = map[int]*Lifecycle{}
		}
		if ls.byName[l.Name()][l.Version()] != nil {
			return nil, fmt.Errorf("lifecycle %s v%d defined twice", l.Name(), l.Version())
		}
		ls.byName[l.Name()][l.Version()] = l
	}
	if _, err := ls.Latest(defaultName); err != nil {
		return nil, fmt.Errorf("default lifecycle: %w", err)
	}
	return ls, nil
}

// Default is the name used when a registration names none.
func (ls *Lifecycles) Default() string { return ls.defaultName }

// Latest returns the newest version of a lifecycle: the one new customers get.
func (ls *Lifecycles) Latest(name string) (*Lifecycle, error) {
	var best *Lifecycle
	for _, l := range ls.byName[name] {
		if best == nil || l.Version() > best.Version() {
			best = l
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLifecycle, name)
	}
	return best, nil
}

// Get returns one version of a lifecycle.
func (ls *Lifecycles) Get(name string, version int) (*Lifecycle, error) {
	l := ls.byName[name][version]
	if l == nil {
		return nil, fmt.Errorf("%w: %s v%d", ErrUnknownLifecycle, name, version)
	}
	return l, nil
}

// Names lists the lifecycles, sorted.
func (ls *Lifecycles) Names() []string {
	var out []string
	for n := range ls.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
