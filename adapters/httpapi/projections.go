package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/kycengine/kyc/projections"
)

// ProjectionAdmin is what the API needs of the projection engine.
type ProjectionAdmin interface {
	Status(ctx context.Context) ([]projections.Status, error)
	Rebuild(ctx context.Context, name string, progress func(projections.RebuildProgress)) error
}

func (s *Server) superuserOnly(w http.ResponseWriter, r *http.Request) bool {
	if callerFrom(r.Context()).IsSuperuser() {
		return true
	}
	writeProblem(w, r, Problem{Type: problemBase + "forbidden", Status: http.StatusForbidden,
		Detail: "projections are administered by superusers"})
	return false
}

func (s *Server) projectionsUnavailable(w http.ResponseWriter, r *http.Request) bool {
	if s.projections != nil {
		return false
	}
	writeProblem(w, r, Problem{Type: problemBase + "read-models-unavailable", Status: http.StatusServiceUnavailable,
		Detail: "this server runs no projections"})
	return true
}

func (s *Server) projectionStatus(w http.ResponseWriter, r *http.Request) {
	if !s.superuserOnly(w, r) || s.projectionsUnavailable(w, r) {
		return
	}
	sts, err := s.projections.Status(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": sts})
}

// rebuildProjection starts a rebuild that outlives the request: the answer
// names the generation being filled, and GET /v1/projections follows it.
func (s *Server) rebuildProjection(w http.ResponseWriter, r *http.Request) {
	if !s.superuserOnly(w, r) || s.projectionsUnavailable(w, r) {
		return
	}
	name := r.PathValue("name")
	started := make(chan projections.RebuildProgress, 1)
	failed := make(chan error, 1)
	go func() {
		var once bool
		err := s.projections.Rebuild(context.WithoutCancel(r.Context()), name, func(p projections.RebuildProgress) {
			if !once {
				once = true
				started <- p
			}
		})
		if err != nil {
			s.log.Error("projection rebuild failed", "projection", name, "err", err)
			failed <- err
		}
	}()
	select {
	case p := <-started:
		writeJSON(w, http.StatusAccepted, p)
	case err := <-failed:
		switch {
		case errors.Is(err, projections.ErrUnknownProjection):
			writeProblem(w, r, fieldProblem(http.StatusNotFound, "unknown-projection", "Unknown projection", "name", err.Error()))
		case errors.Is(err, projections.ErrRebuildRunning):
			writeProblem(w, r, Problem{Type: problemBase + "rebuild-running", Status: http.StatusConflict, Detail: err.Error()})
		case errors.Is(err, projections.ErrRunsElsewhere):
			writeProblem(w, r, Problem{Type: problemBase + "projection-elsewhere", Status: http.StatusConflict,
				Detail: err.Error() + "; send the rebuild to the process that runs it (see its log line \"lease taken\")"})
		default:
			s.fail(w, r, err)
		}
	}
}
