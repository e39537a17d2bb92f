# Stage 0: the environment's hosts, from Terraform, plan by approved plan (tools/infra/stage0.py
# says the rules). Included by the root Makefile. The Jenkinsfile calls these targets:
#
#   make state-bootstrap TF_STATE_REGION=eu-west-1     once per account: the state bucket
#   make stage0 ENV=dev                                 plan, ask (terminal), apply, hand-over
#   make stage0 ENV=dev STEP=plan                       plan only: .state/infra/dev/summary.json
#   make stage0 ENV=dev STEP=apply APPROVED_PLAN=<sha256> [APPROVED_DB_CHANGES=<sha256>]
#   make stage0 ENV=dev STEP=handover                  outputs of the state -> handover.env
#   make teardown ENV=dev [STEP=...]                    after stage 5: MongoDB host + volume
#   make teardown ENV=dev SCOPE=all [STEP=...]          the whole environment
#
# AWS credentials come from the usual chain (the Jenkins agent's instance role), the state
# bucket from TF_STATE_BUCKET or the caller's account (terraform/bootstrap's name), variable
# values from TF_VAR_* or TF_VAR_FILE=<file.tfvars>.
ENV          ?=
STEP         ?= all
SCOPE        ?=
TF_TREE      ?= $(ROOT)/terraform
INFRA_STATE  ?= $(STATE)/infra
STAGE0       := $(PY) tools/infra/stage0.py --tf-dir '$(TF_TREE)' --state-dir '$(INFRA_STATE)'

.PHONY: stage0 teardown state-bootstrap

define stage0_step
	@case "$(ENV)" in ''|*[!a-z0-9-]*) echo "usage: make $@ ENV=dev|prod [STEP=all|plan|apply|handover]" >&2; exit 2;; esac
	@test -d '$(TF_TREE)/envs/$(ENV)' || { echo "no terraform/envs/$(ENV)" >&2; exit 2; }
	@case "$(STEP)" in \
	  all)   $(STAGE0) run --env '$(ENV)' --scope $(1) ;; \
	  plan)  $(STAGE0) plan --env '$(ENV)' --scope $(1) ;; \
	  apply) $(STAGE0) apply --env '$(ENV)' --approved '$(APPROVED_PLAN)' \
	           --approved-db '$(APPROVED_DB_CHANGES)' ;; \
	  handover) $(STAGE0) handover --env '$(ENV)' ;; \
	  *) echo "STEP must be all, plan, apply or handover" >&2; exit 2 ;; \
	esac
endef

stage0: deps-python
	$(call stage0_step,stage0)

teardown: deps-python
	@case "$(SCOPE)" in ''|mongodb|all) ;; *) echo "SCOPE must be mongodb (default) or all" >&2; exit 2;; esac
	$(call stage0_step,$(if $(filter all,$(SCOPE)),all,teardown))

state-bootstrap: deps-python
	$(PY) tools/infra/stage0.py --tf-dir '$(TF_TREE)' bootstrap \
	  --region '$(or $(TF_STATE_REGION),eu-west-1)'
