"""Fake Amazon ECR: moto's IAM, STS and ECR, ECR's registry, and the registry helper's API.

:class:`EcrCloud` (``cloud.py``) serves AWS's control plane at ``/ecr/api`` (ECR), ``/ecr/iam``,
``/ecr/sts`` and ``/ecr/eks`` of the sandbox's URL (boto3's ``endpoint_url``): moto's own backends
answer (:class:`~.models.Aws` routes each call to them in this process, and fixes what the table
says), so no AWS API is re-written here. ECR's registry is a registry front on its own port
(``registries()["ecr"]``). The registry helper BinderHub's ``ExternalRegistryHelper`` calls is
served from its source (``api.py``) at ``/ecr/helpers/<release>``, deployed by ``PUT`` with its
pod's environment (the sandbox's ``helm install``). A new account: no repositories, roles, policies
or OIDC providers; the one administrator the guide signs in as (``credentials.json`` ``ecr``); the
EKS cluster BinderHub runs on (``eks_clusters``), with its own two roles.
``/_sandbox/ecr/settings``: ``clock_offset_hours`` (tokens expire), ``role_propagation_seconds``,
``throttle`` and ``eks_clusters``; ``POST /_sandbox/clock`` moves ECR's clock and runs the
repositories' lifecycle policies (``lifecycle.py``).

Sources: ``moto`` is getmoto/moto 5.2 (what it answers, unchanged unless a row says so);
``botocore`` is botocore's service models (``botocore/data/<service>``) and ``_retry.json``;
``helper`` is manics/binderhub-container-registry-helper at d424275 (chart 0.2.4):
``common/registry.go``, ``amazon/amazon.go``, ``helm-chart/``; ``binderhub`` is
jupyterhub/binderhub ``binderhub/registry.py`` and ``builder.py`` at b9fad99; ``ECR API`` and ``ECR
guide`` are AWS's Amazon ECR API reference and user guide; captured answers are cited by issue.
"assumption" marks what no public source shows.

============================================  ===============================================
behaviour                                     source
============================================  ===============================================
IAM, STS and ECR calls answered by moto's     moto (its server mode's dispatch: the SigV4
backends, one endpoint per service; JSON      scope or path names the service; the
protocol for ECR, query for IAM and STS       ``Request.from_primitives`` path moto's own mock
                                              uses); botocore (ecr: ``protocol: json``,
                                              ``jsonVersion`` 1.1)
account ``123456789012``, fixed               AWS's documented example account id (so stored
                                              outputs agree): assumption that nothing depends
                                              on its value
a new account: no repositories, roles,        DESIGN 8a; the seeded admin (AWS managed
customer policies, OIDC providers; one IAM    ``AdministratorAccess``, moto's copy of AWS's
user ``sandbox-admin`` with                   document): the identity the guide has you sign
``AdministratorAccess`` and an access key     in as (assumption: a user, where people often
                                              sign in through SSO to a role)
the EKS cluster BinderHub runs on (setting     EKS guide: "Amazon EKS cluster IAM role"
``eks_clusters``, default ``binderhub`` in    (AmazonEKSClusterPolicy), "Amazon EKS node IAM
us-east-2): its cluster role, a managed node  role" (AmazonEKSWorkerNodePolicy,
group ``default`` whose node role has the     AmazonEKS_CNI_Policy, AmazonEC2ContainerRegistry
worker, CNI and ECR read-only policies, and   ReadOnly: nodes pull from ECR themselves);
its OIDC issuer (no IAM OIDC provider yet)    "Create an IAM OIDC provider for your cluster"
                                              (a step of IRSA, not there by default); the
                                              roles' names: assumption
EKS at ``/ecr/eks`` (DescribeCluster,         moto's EKS backend; restJson routes by path
DescribeNodegroup, ...): moto's answers       (botocore ``eks`` model): moto gets the path
                                              without ``/ecr/eks`` and checks the signature on
                                              the path as signed, over an empty payload for a
                                              bodiless call (moto signs a GET's headers
                                              instead: its own enforcement could never pass)
AWS managed policies: only those the guide    moto's copy of AWS's documents
names (ECR's ReadOnly, PullOnly, PowerUser,   (``moto/iam/aws_managed_policies.py``); all
FullAccess, EKS worker node, Administrator)   1,600 would cost 0.3 s at every reset
IAM enforced on every call: SigV4 checked     moto (``INITIAL_NO_AUTH_ACTION_COUNT`` = 0,
(wrong secret: ``InvalidSignatureException``  ``moto/core/authorization.py``); ECR's JSON
400; unknown key:                             answers: aws/aws-sdk-php#1114 (400
``UnrecognizedClientException`` 400 "The      ``{"__type":"UnrecognizedClientException",...}``
security token included in the request is     on GetAuthorizationToken),
invalid."), then the caller's policies        smithy545/aws-apps-scripts#12 (a JSON service's
                                              ``InvalidSignatureException``); moto answers
                                              them in the query protocol's XML: the layer
                                              re-words them
ECR calls evaluated against the repository    IAM's ECR resource types (ECR guide, "Amazon ECR
ARN ``arn:aws:ecr:<region>:<account>:         identity-based policy examples": repository
repository/<name>`` (of ``repositoryName``,   ARNs, ``ecr:GetAuthorizationToken`` on ``*``);
or one ``repositoryNames``); other calls      moto checks ``*`` for ECR (a prefix policy would
``*``                                         allow nothing): the layer gives moto the ARN;
                                              several names: ``*``, assumption
ECR's refusal: 400 ``AccessDeniedException``  ECR API (AccessDeniedException); IAM's wording
"User: <arn> is not authorized to perform:    "... because no identity-based policy allows
ecr:<Op> on resource: <arn> because no        the <action> action" (IAM guide,
identity-based policy allows the ecr:<Op>     "Troubleshoot access denied error messages");
action"                                       moto says 403 ``AccessDenied`` in XML: re-worded
``throttle`` {Op: n}: its next n calls        ECR API "Common Errors" (ThrottlingException,
answer 400 ``ThrottlingException`` "Rate      400); botocore ``_retry.json`` and
exceeded" (ECR, JSON ``__type``) or           ``retries/standard.py`` (ThrottlingException,
``Throttling`` (IAM, STS, query XML), so      Throttling: retried); the message: assumption
botocore retries them; a sandbox fault with
the same JSON body does the same
a sandbox fault without ``body`` on           AWS "Common Errors" (InternalFailure 500,
``/ecr/iam`` or ``/ecr/sts`` answers the      ServiceUnavailable 503: "common to the API
query protocol's ``ErrorResponse`` XML: 503   actions of all AWS services"); botocore
``ServiceUnavailable``, 500                   ``parsers.QueryParser`` (XML errors only: a JSON
``InternalFailure`` (Type Receiver), 429      body is its ResponseParserError) and
``Throttling`` "Rate exceeded" (Sender);      ``retries/standard.py`` (Throttling); 429 as
other statuses, and ECR's and EKS's JSON      ``Throttling``: assumption (IAM throttles with
APIs: the sandbox's JSON (botocore's code     400)
is the status)
``GetAuthorizationToken``: one entry,         ECR API (GetAuthorizationToken: base64
``authorizationToken`` base64 of ``AWS:       ``user:password``, "valid for 12 hours",
<password>``, a ~2 kB opaque password,        proxyEndpoint); ECR guide "Private registry
``expiresAt`` now + 12 h on the sandbox       authentication"; moto answers
clock, ``proxyEndpoint`` the front's URL      ``<account>-auth-token`` expiring 2015-01-01: the
(real: ``https://<acct>.dkr.ecr.<region>.     layer mints the password; its shape (base64 of a
amazonaws.com``)                              JSON payload): assumption, opaque to clients
``repositoryUri`` names the front's host      the sandbox's registry host (DESIGN 4: only
(real: ``<acct>.dkr.ecr.<region>.             endpoints differ); moto's answers re-worded
amazonaws.com/<name>``)
``/_sandbox/ecr/node-token?cluster=<c>``      kubernetes/cloud-provider-aws
[``&nodegroup=default&region=<r>``]: what     ``cmd/ecr-credential-provider/main.go`` (the
an EKS node's kubelet gets from its           kubelet's plugin: GetAuthorizationToken with
ecr-credential-provider: a token of           ``RegistryIds`` the host's account, the SDK's
GetAuthorizationToken as the node group's     default chain = the node's instance profile;
node role (an instance-profile session        ``AWS``:password for the registry; cache half
``assumed-role/<role>/i-...``), through       the token's life); kubernetes ``pkg/credential
moto and IAM; 200 the plugin's                provider/plugin/plugin.go`` (a plugin's error:
``CredentialProviderResponse`` (auth by       an empty DockerConfig, no credentials); EKS
registry host, ``cacheDuration`` half the     guide "Amazon EKS node IAM role" (the node
12 h); a role without ``ecr:GetAuthoriza-     role's AmazonEC2ContainerRegistryReadOnly;
tionToken``: 400 ``AccessDeniedException``    AmazonEKSWorkerNodePolicy has no ECR); the
(the kubelet then has no credentials: 401)    session name = the instance id: IAM guide
                                              (roles for EC2, CloudTrail's ARN form)
``AssumeRoleWithWebIdentity`` is unsigned;    STS API (AssumeRoleWithWebIdentity: "does not
its token's ``iss`` must be an OIDC           require AWS security credentials";
provider of the account (else 400             InvalidIdentityToken, IDPRejectedClaim); EKS
``InvalidIdentityToken`` "No OpenIDConnect    guide "IAM roles for service accounts" (the
provider found in your account for <iss>"),   trust policy: Federated = the cluster's OIDC
its ``aud`` in the provider's client ids      provider ARN, ``StringEquals`` on
(else "Incorrect token audience"); the        ``<issuer>:sub`` = ``system:serviceaccount:
role's trust policy must allow it for the     <ns>:<sa>`` and ``:aud`` = ``sts.amazonaws.com``);
token's ``sub``/``aud`` (else 403             moto checks none of it: the layer does (the
``AccessDenied`` "Not authorized to perform   token's signature is not checked: assumption);
sts:AssumeRoleWithWebIdentity")               captured: mozilla-iam/mozilla-aws-cli#127 (400
                                              Sender InvalidIdentityToken "No OpenIDConnect
                                              provider found in your account for <iss>"),
                                              crossplane/crossplane#5578 (403 AccessDenied
                                              "Not authorized to perform sts:AssumeRole
                                              WithWebIdentity"); a wrong condition key is a
                                              refusal: external-secrets/kubernetes-external-
                                              secrets#287, aws/karpenter-provider-aws#1666
a role younger than                           IAM guide ("changes ... are eventually
``role_propagation_seconds`` (default 0: a    consistent"; a new role can fail to be assumed
test turns it on) is refused as an            for a few seconds); the refusal's wording: the
untrusted one                                 same AccessDenied (assumption)
service-account tokens: RS256 JWTs, ``iss``   EKS guide (IRSA: the pod identity webhook
the cluster's OIDC issuer, ``aud``            projects a token with audience
``sts.amazonaws.com``, ``sub``                sts.amazonaws.com, 86400 s); the seeded issuer
``system:serviceaccount:<ns>:<sa>``, 24 h     id is the IRSA examples' ``EXAMPLED539D4633E53DE
                                              1B71EXAMPLE``
registry ``/v2/`` and any call without        mayflower/docker-ls#28 (ECR's ``Basic realm="
credentials: 401 ``Basic realm="https://      https://<host>/",service="ecr.amazonaws.com"``);
<host>/",service="ecr.amazonaws.com"``;       openai/tart#144 (Basic, not Bearer); the body
credentials that are no token ECR gave        "Not Authorized": assumption; aws/aws-cli#5317
(wrong password or user): 400 Bad Request     (a token for another region), #5950, #9864:
                                              ``docker login`` "failed with status: 400 Bad
                                              Request"; the 400's body: assumption
Basic ``AWS:<password>`` on every call (no    ECR guide "Private registry authentication";
token endpoint); the password checked         ECR API (GetAuthorizationToken)
against the tokens ECR handed out
an expired token: 403 ``DENIED`` "Your        aws-samples/ecs-bg-external-controller#13,
authorization token has expired.              aws/aws-cli#6580, #7977 (the message);
Reauthenticate and try again." (``/v2/``      serverless/serverless#13116 (403 Forbidden);
too)                                          docker/docker-py#1170 (403 on a pull); the
                                              ``/v2/`` answer: assumption
a repository ECR does not have: 404           plexsystems/sinker#55 (GET manifest: NAME_UNKNOWN
``NAME_UNKNOWN`` "The repository with name    and that message), actions/starter-workflows
'<name>' does not exist in the registry       #2647, aws-actions/amazon-ecr-login#166 (push);
with id '<account>'", before any upload       regclient/regclient#869 (ECR does not create on
                                              push); mulgadc/spinifex#400 (refused at the
                                              upload's start)
a token's identity must be allowed the        ECR guide ("Pushing an image": the push actions;
call's ECR actions on the repository now      "Amazon ECR managed policies" ReadOnly: the pull
(pull: BatchGetImage,                         actions), evaluated at each call (the token
GetDownloadUrlForLayer;
push: BatchCheckLayerAvailability, Initiate/  carries the identity, not permissions:
UploadLayerPart, CompleteLayerUpload,         assumption from the guide's "the token's
PutImage), else 403 ``DENIED`` "User: <arn>   permissions match the IAM principal's"); the
is not authorized to perform: <action> on     403 DENIED wording: assumption, after IAM's
resource: <arn> because ..."
a manifest the registry stores (201) is an    ECR API (DescribeImages: imageTags,
image DescribeImages shows (moto's            imageDigest, imagePushedAt); moto's
``put_image``), with the registry's digest    ``put_image`` records it, but derives its own
and ``imagePushedAt`` the registry front's    digest and stamps the wall clock: the layer
record of the push, on ECR's clock            gives it the registry's digest and the push's
                                              time (``registry.TagRecords``)
DescribeImages' ``imageSizeInBytes``: the     ECR API (ImageDetail.imageSizeInBytes: "the
sum of the sizes the image's manifest gives   size, in bytes, of the image in the
its layers (as pushed: compressed), through   repository"; "If the image is a manifest
the registry or PutImage; a manifest list or  list, this will be the max size of all
index: the largest of its images ECR has a    manifests in the list"; the Docker client
record of (none: no size)                     pushes compressed layers, so ``docker images``
                                              shows more than ECR); moto answers the config
                                              blob's size: the layer re-sizes each image from
                                              its manifest; the config blob not counted, and
                                              an index whose images were pushed by digest
                                              (not recorded here) unsized: assumption
``POST /_sandbox/clock``: ECR's clock moves   ECR guide "Automate the cleanup of images by
(``clock_offset_hours``: tokens handed out    using lifecycle policies" (real ECR expires
before expire too), then every repository's   images "within 24 hours" of meeting the
lifecycle policy is evaluated once at the     criteria; the fake at once, at the advance:
new now (``lifecycle.py``); an expired image  assumption); moto stores policies but applies
goes from ECR's records and from the          none
registry (a pull then answers 404); the
answer lists ``<region>/<name>:<tag>``
rules applied by ``rulePriority``, lowest     ECR guide, the same page's "Lifecycle policy
first; an image is expired by one rule or     evaluation rules"; "Lifecycle policy
none, and a rule cannot expire an image a     properties" (rulePriority, tagStatus,
higher priority rule's tagging requirements   tagPatternList, tagPrefixList, countType,
matched (it still counts it); ``tagStatus``   countUnit, countNumber, action); "Examples of
tagged (with ``tagPrefixList``: every prefix  lifecycle policies" ("Filtering on multiple
on some tag; ``tagPatternList``: ``*``        rules", "Filtering on multiple tags in a
wildcards, whole tag), untagged, any;         single rule": their outcomes are unit tests)
``imageCountMoreThan`` N (the youngest N
stay), ``sinceImagePushed`` N ``days``
(pushed more than N days ago); expiry
oldest first
not modelled: ``sinceImagePulled``,           the same guide's template lists them (ECR's
``sinceImageTransitioned``, the archive       archive storage class); assumption: not
storage class and ``transition`` (such a      needed by the helper's rule
rule expires nothing here); untagged images
(a tag pushed again leaves none: moto drops
the old image)
helper: deploy = ``PUT /ecr/helpers/<r>``     helper ``helm-chart/templates/deployment.yaml``
with the pod's environment                    (``BINDERHUB_AUTH_TOKEN`` from the Secret's
(``BINDERHUB_AUTH_TOKEN``, ``AWS_REGION``,    ``auth_token``, ``RETURN_ERROR_DETAILS`` from
``AWS_ROLE_ARN`` + ``service_account`` +      ``return_error_details: True``, ``extraEnv``);
``cluster`` for IRSA, or                      EKS IRSA (the webhook injects AWS_ROLE_ARN and a
``AWS_ACCESS_KEY_ID``/``SECRET``,             token file); ``amazon.go`` (AWS_REGISTRY_ID,
``AWS_REGISTRY_ID``,                          AWS_ECR_EXPIRES_AFTER_PUSH_DAYS); without
``AWS_ECR_EXPIRES_AFTER_PUSH_DAYS``); no      BINDERHUB_AUTH_TOKEN the pod stops
token variable: refused                       (``common.getAuthToken``'s message)
a release that does not exist: 503            assumption (real: the Service has no endpoints,
                                              the connection fails)
the helper calls ECR as its pod's identity,   ``amazon.Setup`` (LoadDefaultConfig: IRSA or
via boto3 over the sandbox's HTTPS; it        keys; GetCallerIdentity at start, fatal when it
starts (GetCallerIdentity) at its first       fails); a failing start answers 500 with the
call, and again after a failure               error (assumption: real, the pod restarts and
                                              nothing answers meanwhile)
auth: ``Authorization: Bearer <token>`` on    ``common.CheckAuthorised`` (an empty token turns
``/repos/``, ``/repo/``, ``/image/``,         auth off), ``NotAuthorised``; ``/health`` is
``/token/``; wrong: 403 ``{"error": "not      outside it (``common.Run``)
authorised"}``
``GET /repo/<name>``: DescribeRepositories;   ``amazon.go`` GetRepository (RepositoryNotFound:
200 the repository, 404 ``null``              404), ``common.NotFound`` (``null\\n``)
``POST /repo/<name>``: CreateRepository; an   ``amazon.go`` CreateRepository,
existing one is answered as it is; then       setRepositoryPolicy, lifecyclePolicy (rule
PutLifecyclePolicy ``sinceImagePushed`` N     1000, "Delete images sinceImagePushed N days",
days (``tagStatus`` any, expire) when         countUnit days): a repository creation template
``AWS_ECR_EXPIRES_AFTER_PUSH_DAYS`` > 0       is not used (ECR's apply only to repositories
                                              ECR creates: pull through cache, replication,
                                              create on push)
``DELETE /repo/<name>``: lifecycle policy,    ``amazon.go`` DeleteRepository,
then repository (absent is fine)              deleteRepositoryPolicy
``GET /image/<name>:<tag>`` (tag after the    ``common.ImageGetNameAndTag`` (last ``:``,
last ``:``, default ``latest``):              default latest, empty tag: error);
DescribeImages; 404 ``null`` when the image   ``amazon.go`` GetImage (ImageNotFound or
or the repository is missing                  RepositoryNotFound: 404)
``POST /token[/...]``: GetAuthorizationToken  ``amazon.go`` GetToken, ``common.RegistryToken``
-> ``{username, password, registry,           (json names; registry = proxyEndpoint);
expires}``; not one entry: 500                binderhub (ExternalRegistryHelper keeps
                                              username, password, registry)
JSON of repositories and images: Go's         ``json.Marshal`` of aws-sdk-go-v2's types (no
field names (``RepositoryName``,              json tags); nil fields left out here (Go writes
``ImageTags``), times RFC 3339                ``null``): assumption
an AWS error: 500 ``{"error": "operation      ``common.InternalServerError``
error <Service>: <Op>, https response error   (RETURN_ERROR_DETAILS); aws-sdk-go-v2's text
StatusCode: N, RequestID: <id>, <Code>:       (smithy-go OperationError, ResponseError; ``api
<msg>"}`` (``api error <Code>: ...`` for an   error`` for GenericAPIError): captured in
error the model does not declare);            crossplane/crossplane#5578 and namespacelabs/
``{"error": "internal server error"}``        foundation#801; the retryer: standard, 3
without RETURN_ERROR_DETAILS; throttling      attempts (aws-sdk-go-v2 ``retry``)
retried as the Go SDK does (3 attempts)
the helper's repository name is BinderHub's   binderhub ``builder._get_image_basename_and_tag``
image name without the registry host (the     (the registry part dropped), ``registry.py``
prefix included); the helper adds none        ExternalRegistryHelper (``/repo/<image>``);
                                              ``amazon.go`` (the name as given)
============================================  ===============================================
"""

from __future__ import annotations

from .cloud import DEFAULT_SETTINGS, SEED_CLUSTER, EcrCloud

__all__ = ["DEFAULT_SETTINGS", "SEED_CLUSTER", "EcrCloud"]
