//! A fidelity proxy: an HTTP/1.1 proxy on loopback, put in front of a [`Moto`] server, that adds
//! the documented AWS behaviour moto does not show (eventual consistency, Lambda states,
//! throttling, the shared bucket namespace, expected bucket owners, per-key DeleteObjects
//! failures, lost answers).
//!
//! moto still does all the work: the proxy only refuses, delays, drops or rewrites what AWS would.
//! Every knob is off in [`Fidelity::default`], which makes the proxy a pure pass-through that
//! counts requests by kind. See `docs/testing.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::Moto;

/// What the proxy adds to moto's behaviour. Every field is documented AWS behaviour, named after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fidelity {
    /// Seed of the proxy's random decisions (throttling, dropped answers).
    pub seed: u64,
    /// IAM is eventually consistent: a role made less than this long ago is not yet usable by Lambda:
    /// CreateFunction (and UpdateFunctionConfiguration naming that role) answers 400
    /// InvalidParameterValueException "The role defined for the function cannot be assumed by Lambda."
    /// STS AssumeRole on such a role answers AccessDenied. Time counts from the CreateRole answer.
    pub iam_propagation: Duration,
    /// Lambda: after CreateFunction the function is State=Pending (LastUpdateStatus InProgress) this long.
    pub lambda_pending: Duration,
    /// Lambda: after UpdateFunctionConfiguration / UpdateFunctionCode, LastUpdateStatus=InProgress this long.
    pub lambda_update: Duration,
    /// Fraction (0.0..=1.0) of requests answered with that service's throttling error instead of being
    /// forwarded, by signing name ("lambda", "iam", "sts", "sns", "s3", "logs", "events", "monitoring", "ec2"); "*" for every service not named.
    /// A key may also be a request kind as [`Counters::requests`] names it (`ec2:DescribeInstances`,
    /// `s3:PUT /bucket/scans/*`), or `service@account` (`ec2@222222222222`: the account a request
    /// is made in, as `disabled_regions` reads it), in that order before the service: AWS
    /// throttles per action (EC2), per key prefix (S3) and per account, not only per service.
    pub throttle: BTreeMap<String, f64>,
    /// Bucket names that belong to "another account": CreateBucket answers 409 BucketAlreadyExists,
    /// HeadBucket 403 (empty body), any other request on the bucket 403 AccessDenied.
    pub foreign_buckets: BTreeSet<String>,
    /// Bucket name -> the account id that owns it (S3 `ExpectedBucketOwner`): a request on the
    /// bucket whose `x-amz-expected-bucket-owner` header names another account answers 403
    /// AccessDenied "Access Denied" (HEAD: no body) and is not forwarded. A request without the
    /// header passes: S3 checks the owner only when asked.
    pub bucket_owners: BTreeMap<String, String>,
    /// Key prefixes that DeleteObjects cannot delete (as with Object Lock retention): those entries are removed from the
    /// request before it is forwarded, and the 200 answer carries an <Error> per such key/version with
    /// Code AccessDenied and Message "Access Denied".
    pub undeletable_prefixes: Vec<String>,
    /// Fraction of requests whose answer is dropped after moto served them (connection closed with no answer).
    pub drop_answers: f64,
    /// Latency added before each request is forwarded.
    pub latency: Duration,
    /// Regions not enabled in an account (opt-in Regions it has not enabled), by account id, or
    /// `"*"` for every account. An EC2 request signed for such a region in that account answers
    /// 401 AuthFailure "AWS was not able to validate the provided access credentials", not
    /// forwarded. While any region is listed, DescribeRegions answers as EC2 does: such a region's
    /// OptInStatus is `not-opted-in`, not-opted-in Regions are left out unless the request sets
    /// `AllRegions=true`, and only the Regions of the request's partition are listed (moto lists
    /// every Region of every partition, enabled or not). A request's account is the one its access
    /// key was issued in by an AssumeRole answered through the proxy, else moto's default
    /// `123456789012`.
    pub disabled_regions: BTreeMap<String, BTreeSet<String>>,
    /// STS AssumeRole checks the role's trust policy, as AWS does (moto lets any role ARN be
    /// assumed, even one that does not exist): the role must have been created through the proxy
    /// in the ARN's account (CreateRole, not since deleted; UpdateAssumeRolePolicy followed) and an
    /// Allow statement for `sts:AssumeRole` must name the caller's account (its id, an ARN in it,
    /// or `*`) as an `AWS` principal, with a `StringEquals` `sts:ExternalId` condition, if any, met
    /// by the request's ExternalId. Other condition keys are not evaluated. Otherwise 403
    /// AccessDenied "User: ... is not authorized to perform: sts:AssumeRole on resource: ARN", not
    /// forwarded.
    pub trust_policies: bool,
}

impl Default for Fidelity {
    /// Everything off: a pure pass-through that counts requests.
    fn default() -> Fidelity {
        Fidelity {
            seed: 0,
            iam_propagation: Duration::ZERO,
            lambda_pending: Duration::ZERO,
            lambda_update: Duration::ZERO,
            throttle: BTreeMap::new(),
            foreign_buckets: BTreeSet::new(),
            bucket_owners: BTreeMap::new(),
            undeletable_prefixes: Vec::new(),
            drop_answers: 0.0,
            latency: Duration::ZERO,
            disabled_regions: BTreeMap::new(),
            trust_policies: false,
        }
    }
}

impl Fidelity {
    /// IAM 8 s, Lambda pending 3 s, Lambda update 3 s, 5 % throttling on every service, nothing else.
    pub fn realistic(seed: u64) -> Fidelity {
        Fidelity {
            seed,
            iam_propagation: Duration::from_secs(8),
            lambda_pending: Duration::from_secs(3),
            lambda_update: Duration::from_secs(3),
            throttle: BTreeMap::from([("*".to_string(), 0.05)]),
            ..Fidelity::default()
        }
    }
}

/// What the proxy saw and did, as a snapshot ([`FidelityProxy::counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests that arrived, by kind: `service:Action` (query and JSON protocols) or
    /// `service:METHOD shape` (REST protocols, e.g. `s3:GET ?versioning`,
    /// `lambda:GET /2015-03-31/functions/*`). Throttled and refused requests count too.
    pub requests: BTreeMap<String, u64>,
    /// Throttling errors answered, by service.
    pub throttled: BTreeMap<String, u64>,
    /// Throttling errors answered, by `service@account` (the request's account, as
    /// `disabled_regions` reads it).
    pub throttled_in: BTreeMap<String, u64>,
    /// CreateFunction/UpdateFunctionConfiguration/AssumeRole refused for propagation.
    pub role_not_ready: u64,
    /// 409 ResourceConflictException answered for an update while Pending/InProgress.
    pub lambda_conflicts: u64,
    /// GetFunction/GetFunctionConfiguration answers that reported Pending or InProgress.
    pub lambda_not_ready_reads: u64,
    /// Answers for foreign buckets.
    pub bucket_taken: u64,
    /// S3 requests on a bucket that carried `x-amz-expected-bucket-owner`, by bucket (throttled
    /// and refused ones too).
    pub owner_expected: BTreeMap<String, u64>,
    /// S3 requests on a bucket without `x-amz-expected-bucket-owner`, by bucket (throttled and
    /// refused ones too).
    pub owner_not_expected: BTreeMap<String, u64>,
    /// 403 AccessDenied answered for an expected owner other than the bucket's (`bucket_owners`).
    pub wrong_owner: u64,
    /// Per-key errors added to DeleteObjects answers.
    pub undeletable: u64,
    /// Answers dropped.
    pub dropped: u64,
    /// EC2 requests refused (401 AuthFailure) for a region not enabled in the account
    /// (`disabled_regions`), by `account/region`.
    pub region_not_enabled: BTreeMap<String, u64>,
    /// AssumeRole requests refused by `trust_policies`, by role ARN.
    pub assume_role_denied: BTreeMap<String, u64>,
}

impl Counters {
    /// Every request that arrived.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Every throttling error answered.
    pub fn total_throttled(&self) -> u64 {
        self.throttled.values().sum()
    }
}

/// The running proxy. Dropping it stops accepting connections.
pub struct FidelityProxy {
    port: u16,
    shared: Arc<Shared>,
    env: Vec<(String, String)>,
}

impl FidelityProxy {
    /// Starts the proxy on a free 127.0.0.1 port in front of `moto` (HTTP or HTTPS); panics with
    /// the reason when it cannot.
    pub fn start(moto: &Moto, config: Fidelity) -> FidelityProxy {
        let tls = moto.ca().map(|ca| Arc::new(tls_config(ca)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("fidelity proxy: cannot bind 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fidelity proxy: no local address: {e}"))
            .port();
        let shared = Arc::new(Shared {
            upstream: Upstream {
                port: moto.port(),
                tls,
            },
            stop: AtomicBool::new(false),
            state: Mutex::new(State::new(config)),
        });
        let accepting = shared.clone();
        std::thread::Builder::new()
            .name(format!("fidelity-proxy-{port}"))
            .spawn(move || accept(listener, accepting))
            .unwrap_or_else(|e| panic!("fidelity proxy: cannot start its thread: {e}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let env = moto
            .aws_env()
            .into_iter()
            .map(|(k, v)| {
                if k == "AWS_ENDPOINT_URL" {
                    (k, endpoint.clone())
                } else {
                    (k, v)
                }
            })
            .collect();
        FidelityProxy { port, shared, env }
    }

    /// The port the proxy listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL to hand to AWS clients.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// [`Moto::aws_env`] with `AWS_ENDPOINT_URL` pointing at the proxy.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    /// Applies [`FidelityProxy::aws_env`] to a command.
    pub fn configure(&self, cmd: &mut std::process::Command) {
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
    }

    /// Reconfigures the running proxy. Role ages and function states are kept; the random
    /// decisions restart from the new seed.
    pub fn set(&self, config: Fidelity) {
        let mut state = self.shared.lock();
        state.rng = SplitMix(config.seed);
        state.config = config;
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.shared.lock().counters = Counters::default();
    }
}

impl Drop for FidelityProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so it sees the flag and returns (closing the listener).
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Shared {
    upstream: Upstream,
    stop: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not take the counters with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        match client {
            Ok(client) => {
                let shared = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("fidelity-conn".into())
                    .spawn(move || {
                        let _ = serve(client, &shared);
                    });
            }
            // Out of descriptors and the like: wait instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Serves one client connection: one request at a time, over one upstream connection.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let mut upstream: Option<BufReader<Conn>> = None;
    loop {
        let Some(mut head) = read_head(&mut reader)? else {
            return Ok(());
        };
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            // Answer the client's wait here; moto then gets a plain request.
            client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            head.remove("expect");
        }
        let framing = head.framing(true, false);
        let (body, chunked) = read_body(&mut reader, framing)?;
        let request = Message {
            head,
            body,
            chunked,
        };
        let close = request.head.line.ends_with("HTTP/1.0")
            || request
                .head
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let answer = match handle(shared, request, &mut upstream) {
            Ok(Some(answer)) => answer,
            // Dropped: close the connection without a word, as a lost answer looks to a client.
            Ok(None) => return Ok(()),
            Err(e) => {
                let text = format!(
                    "fidelity proxy: moto on 127.0.0.1:{} did not answer: {e}",
                    shared.upstream.port
                );
                let answer = respond(
                    502,
                    &[("Content-Type", "text/plain".into())],
                    text.into_bytes(),
                    false,
                );
                client.write_all(&answer.to_bytes())?;
                return Ok(());
            }
        };
        client.write_all(&answer.to_bytes())?;
        client.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// One request: count it, decide, forward (or answer in AWS's place), adjust the answer.
fn handle(
    shared: &Shared,
    mut request: Message,
    upstream: &mut Option<BufReader<Conn>>,
) -> io::Result<Option<Message>> {
    let call = Call::new(&request);
    let latency = {
        let mut state = shared.lock();
        *state
            .counters
            .requests
            .entry(call.kind.clone())
            .or_default() += 1;
        state.config.latency
    };
    if !latency.is_zero() {
        std::thread::sleep(latency);
    }
    let after = match shared.lock().before(&call, &mut request) {
        Plan::Answer(answer) => return Ok(Some(answer)),
        Plan::Forward(after) => after,
    };
    let mut answer = shared
        .upstream
        .exchange(upstream, &request, call.method == "HEAD")?;
    let mut state = shared.lock();
    state.after(after, &mut answer);
    let drop_rate = state.config.drop_answers;
    if state.draw(drop_rate) {
        state.counters.dropped += 1;
        return Ok(None);
    }
    Ok(Some(answer))
}

// ---------------------------------------------------------------------------------------------
// The behaviour: state, decisions before forwarding, changes to answers.

struct State {
    config: Fidelity,
    rng: SplitMix,
    /// Numbers the request IDs of answers the proxy makes.
    answers: u64,
    counters: Counters,
    /// Roles created through the proxy, by name, with the time of the CreateRole answer.
    roles: HashMap<String, Instant>,
    /// Functions whose state the proxy tracks, by name.
    functions: HashMap<String, Function>,
    /// The account of each access key an AssumeRole answer issued.
    keys: HashMap<String, String>,
    /// Trust policies of roles created through the proxy, by (account, role name).
    trusts: HashMap<(String, String), serde_json::Value>,
}

struct Function {
    arn: String,
    pending_until: Instant,
    updating_until: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Updating,
    Ready,
}

impl Function {
    fn phase(&self, now: Instant) -> Phase {
        if now < self.pending_until {
            Phase::Pending
        } else if now < self.updating_until {
            Phase::Updating
        } else {
            Phase::Ready
        }
    }
}

enum Plan {
    /// Answer without forwarding.
    Answer(Message),
    /// Forward, then adjust the answer.
    Forward(After),
}

enum After {
    Nothing,
    /// A role made: its name, and the account and trust policy it was made with.
    CreateRole(String, Option<(String, Option<serde_json::Value>)>),
    DeleteRole(String),
    /// A role's trust policy was set (CreateRole or UpdateAssumeRolePolicy): (account, name).
    TrustPolicy(String, String, Option<serde_json::Value>),
    /// The keys an AssumeRole answer issues.
    AssumeRole,
    /// DescribeRegions in an account, with AllRegions or not, in a partition.
    DescribeRegions {
        account: String,
        all: bool,
        partition: &'static str,
    },
    CreateFunction,
    UpdateFunction(String),
    ReadFunction {
        name: String,
        nested: bool,
    },
    DeleteFunction(String),
    DeleteObjects(Vec<(String, Option<String>)>),
}

impl State {
    fn new(config: Fidelity) -> State {
        State {
            rng: SplitMix(config.seed),
            config,
            answers: 0,
            counters: Counters::default(),
            roles: HashMap::new(),
            functions: HashMap::new(),
            keys: HashMap::new(),
            trusts: HashMap::new(),
        }
    }

    /// The account a request is made in: its access key's, as an AssumeRole answer issued it;
    /// moto's default account otherwise.
    fn account_of(&self, call: &Call) -> String {
        call.access_key
            .as_ref()
            .and_then(|k| self.keys.get(k))
            .cloned()
            .unwrap_or_else(|| MOTO_DEFAULT_ACCOUNT.to_string())
    }

    /// Whether `region` is not enabled in `account`.
    fn region_disabled(&self, account: &str, region: &str) -> bool {
        [account, "*"].iter().any(|a| {
            self.config
                .disabled_regions
                .get(*a)
                .is_some_and(|r| r.contains(region))
        })
    }

    /// True with probability `rate`; draws nothing when the knob is off.
    fn draw(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.next_f64() < rate
    }

    fn request_id(&mut self) -> String {
        self.answers += 1;
        let a = SplitMix(self.config.seed ^ self.answers.rotate_left(32)).next();
        let b = SplitMix(a).next();
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    fn role_is_young(&self, role_arn: &str, now: Instant) -> bool {
        let name = role_arn.rsplit('/').next().unwrap_or(role_arn);
        self.roles
            .get(name)
            .is_some_and(|made| now.duration_since(*made) < self.config.iam_propagation)
    }

    fn before(&mut self, call: &Call, request: &mut Message) -> Plan {
        let now = Instant::now();
        if call.service == "s3" {
            self.count_expected_owner(call, request);
        }
        let in_account = format!("{}@{}", call.service, self.account_of(call));
        let throttle = &self.config.throttle;
        let rate = throttle
            .get(&call.kind)
            .or_else(|| throttle.get(&in_account))
            .or_else(|| throttle.get(&call.service))
            .or_else(|| throttle.get("*"))
            .copied()
            .unwrap_or(0.0);
        if self.draw(rate) {
            *self
                .counters
                .throttled
                .entry(call.service.clone())
                .or_default() += 1;
            *self.counters.throttled_in.entry(in_account).or_default() += 1;
            return Plan::Answer(self.throttled(call));
        }
        match call.service.as_str() {
            "s3" => self.before_s3(call, request),
            "lambda" => self.before_lambda(call, now),
            "ec2" => self.before_ec2(call),
            "iam" => {
                let name = call.param("RoleName").unwrap_or_default().to_string();
                let policy = || {
                    call.param("AssumeRolePolicyDocument")
                        .and_then(|d| serde_json::from_str(d).ok())
                };
                match call.param("Action") {
                    Some("CreateRole") => Plan::Forward(After::CreateRole(
                        name.clone(),
                        Some((self.account_of(call), policy())),
                    )),
                    Some("UpdateAssumeRolePolicy") => {
                        Plan::Forward(After::TrustPolicy(self.account_of(call), name, policy()))
                    }
                    Some("DeleteRole") => {
                        self.trusts.remove(&(self.account_of(call), name.clone()));
                        Plan::Forward(After::DeleteRole(name))
                    }
                    _ => Plan::Forward(After::Nothing),
                }
            }
            "sts" if call.param("Action") == Some("AssumeRole") => {
                let arn = call.param("RoleArn").unwrap_or_default();
                if self.config.trust_policies && !self.trusted(call, arn) {
                    *self
                        .counters
                        .assume_role_denied
                        .entry(arn.to_string())
                        .or_default() += 1;
                    let message = format!(
                        "User: arn:aws:iam::{}:user/moto is not authorized to perform: \
                         sts:AssumeRole on resource: {arn}",
                        self.account_of(call)
                    );
                    let id = self.request_id();
                    return Plan::Answer(query_error(403, "AccessDenied", &message, &id));
                }
                if !self.role_is_young(arn, now) {
                    return Plan::Forward(After::AssumeRole);
                }
                self.counters.role_not_ready += 1;
                let account = arn.split(':').nth(4).unwrap_or("123456789012");
                let message = format!(
                    "User: arn:aws:sts::{account}:user/moto is not authorized to perform: \
                     sts:AssumeRole on resource: {arn}"
                );
                let id = self.request_id();
                Plan::Answer(query_error(403, "AccessDenied", &message, &id))
            }
            _ => Plan::Forward(After::Nothing),
        }
    }

    /// The service's own throttling error, in the protocol the request spoke.
    fn throttled(&mut self, call: &Call) -> Message {
        let id = self.request_id();
        let head_only = call.method == "HEAD";
        match call.service.as_str() {
            "lambda" => lambda_error(
                429,
                "TooManyRequestsException",
                r#"{"Reason":"CallerRateLimitExceeded","Type":"User","message":"Rate exceeded"}"#
                    .to_string(),
                &id,
            ),
            "s3" => s3_error(
                503,
                "SlowDown",
                "Please reduce your request rate.",
                "",
                &id,
                head_only,
            ),
            "ec2" => ec2_error(
                503,
                "RequestLimitExceeded",
                "Request limit exceeded.",
                &id,
                head_only,
            ),
            _ if call.form.is_none() => {
                // JSON protocols answer in the request's JSON version.
                let content_type = call
                    .content_type
                    .as_deref()
                    .filter(|t| t.starts_with("application/x-amz-json"))
                    .unwrap_or("application/x-amz-json-1.1")
                    .to_string();
                let mut headers = vec![
                    ("Content-Type", content_type),
                    ("x-amzn-RequestId", id.clone()),
                ];
                if call.service == "monitoring" {
                    // CloudWatch over JSON is query-compatible: its SDKs read the query code here.
                    headers.push(("x-amzn-query-error", "Throttling;Sender".into()));
                }
                respond(
                    400,
                    &headers,
                    br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_vec(),
                    head_only,
                )
            }
            _ => query_error(400, "Throttling", "Rate exceeded", &id),
        }
    }

    /// Counts an S3 request on a bucket as carrying the expected owner or not, whatever the proxy
    /// does with it next.
    fn count_expected_owner(&mut self, call: &Call, request: &Message) {
        let (bucket, _) = s3_target(&call.path);
        if bucket.is_empty() {
            return;
        }
        let counter = if request.head.header(EXPECTED_OWNER).is_some() {
            &mut self.counters.owner_expected
        } else {
            &mut self.counters.owner_not_expected
        };
        *counter.entry(bucket).or_default() += 1;
    }

    fn before_s3(&mut self, call: &Call, request: &mut Message) -> Plan {
        let (bucket, key) = s3_target(&call.path);
        if bucket.is_empty() {
            return Plan::Forward(After::Nothing);
        }
        let bare = bare_params(&call.query);
        if self.config.foreign_buckets.contains(&bucket) {
            self.counters.bucket_taken += 1;
            let id = self.request_id();
            let answer = match call.method.as_str() {
                "PUT" if key.is_empty() && bare.is_empty() => s3_error(
                    409,
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared \
                     by all users of the system. Please select a different name and try again.",
                    &format!("<BucketName>{}</BucketName>", xml_escape(&bucket)),
                    &id,
                    false,
                ),
                "HEAD" => respond(403, &[("x-amz-request-id", id.clone())], Vec::new(), true),
                _ => s3_error(403, "AccessDenied", "Access Denied", "", &id, false),
            };
            return Plan::Answer(answer);
        }
        let expected = request.head.header(EXPECTED_OWNER).map(str::trim);
        if let (Some(owner), Some(expected)) = (self.config.bucket_owners.get(&bucket), expected) {
            if owner != expected {
                self.counters.wrong_owner += 1;
                let id = self.request_id();
                let head_only = call.method == "HEAD";
                let answer = s3_error(403, "AccessDenied", "Access Denied", "", &id, head_only);
                return Plan::Answer(answer);
            }
        }
        let delete_objects = call.method == "POST" && key.is_empty() && bare.contains(&"delete");
        if !delete_objects || self.config.undeletable_prefixes.is_empty() {
            return Plan::Forward(After::Nothing);
        }
        let Ok(body) = std::str::from_utf8(&call.body) else {
            return Plan::Forward(After::Nothing);
        };
        let entries = delete_entries(body);
        let prefixes = &self.config.undeletable_prefixes;
        let (locked, free): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|e| prefixes.iter().any(|p| e.key.starts_with(p.as_str())));
        if locked.is_empty() {
            return Plan::Forward(After::Nothing);
        }
        let errors: Vec<(String, Option<String>)> = locked
            .iter()
            .map(|e| (e.key.clone(), e.version.clone()))
            .collect();
        if free.is_empty() {
            // Nothing left for moto to delete (it refuses an empty Delete): S3's answer is the
            // errors alone.
            self.counters.undeletable += errors.len() as u64;
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult \
                 xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{}</DeleteResult>",
                delete_errors_xml(&errors)
            );
            let id = self.request_id();
            return Plan::Answer(respond(
                200,
                &[
                    ("Content-Type", "application/xml".into()),
                    ("x-amz-request-id", id),
                ],
                body.into_bytes(),
                false,
            ));
        }
        let mut kept = String::with_capacity(body.len());
        let mut from = 0;
        for entry in &locked {
            kept.push_str(&body[from..entry.start]);
            from = entry.end;
        }
        kept.push_str(&body[from..]);
        // The body changed: the client's digests no longer match it (moto checks no signature).
        for name in [
            "content-md5",
            "x-amz-sdk-checksum-algorithm",
            "x-amz-decoded-content-length",
        ] {
            request.head.remove(name);
        }
        request
            .head
            .headers
            .retain(|(k, _)| !k.to_ascii_lowercase().starts_with("x-amz-checksum-"));
        request.set_body(kept.into_bytes());
        Plan::Forward(After::DeleteObjects(errors))
    }

    fn before_lambda(&mut self, call: &Call, now: Instant) -> Plan {
        let role_of = |call: &Call| -> Option<String> {
            let body: serde_json::Value = serde_json::from_slice(&call.body).ok()?;
            Some(body.get("Role")?.as_str()?.to_string())
        };
        match lambda_op(&call.method, &call.path, &call.query) {
            LambdaOp::Create => {
                if role_of(call).is_some_and(|role| self.role_is_young(&role, now)) {
                    return self.role_not_ready();
                }
                Plan::Forward(After::CreateFunction)
            }
            LambdaOp::UpdateConfiguration(name) | LambdaOp::UpdateCode(name) => {
                if role_of(call).is_some_and(|role| self.role_is_young(&role, now)) {
                    return self.role_not_ready();
                }
                let Some(function) = self.functions.get(&name) else {
                    return Plan::Forward(After::UpdateFunction(name));
                };
                let message = match function.phase(now) {
                    Phase::Ready => return Plan::Forward(After::UpdateFunction(name)),
                    Phase::Pending => format!(
                        "The operation cannot be performed at this time. The resource {} is \
                         currently in the following state: 'Pending'. StateReasonCode: 'Creating'",
                        function.arn
                    ),
                    Phase::Updating => format!(
                        "The operation cannot be performed at this time. An update is in \
                         progress for resource: {}",
                        function.arn
                    ),
                };
                self.counters.lambda_conflicts += 1;
                let id = self.request_id();
                let body = serde_json::json!({"Type": "User", "message": message}).to_string();
                Plan::Answer(lambda_error(409, "ResourceConflictException", body, &id))
            }
            LambdaOp::Get(name) => Plan::Forward(After::ReadFunction { name, nested: true }),
            LambdaOp::GetConfiguration(name) => Plan::Forward(After::ReadFunction {
                name,
                nested: false,
            }),
            LambdaOp::Delete(name) => Plan::Forward(After::DeleteFunction(name)),
            LambdaOp::Other => Plan::Forward(After::Nothing),
        }
    }

    fn before_ec2(&mut self, call: &Call) -> Plan {
        let Some(region) = call.region.clone() else {
            return Plan::Forward(After::Nothing);
        };
        let account = self.account_of(call);
        if self.region_disabled(&account, &region) {
            *self
                .counters
                .region_not_enabled
                .entry(format!("{account}/{region}"))
                .or_default() += 1;
            let id = self.request_id();
            return Plan::Answer(ec2_error(
                401,
                "AuthFailure",
                "AWS was not able to validate the provided access credentials",
                &id,
                call.method == "HEAD",
            ));
        }
        if call.param("Action") == Some("DescribeRegions")
            && !self.config.disabled_regions.is_empty()
        {
            let all = call
                .param("AllRegions")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            return Plan::Forward(After::DescribeRegions {
                account,
                all,
                partition: partition_of(&region),
            });
        }
        Plan::Forward(After::Nothing)
    }

    /// Whether the trust policy of the role `arn` names lets this caller assume it.
    fn trusted(&self, call: &Call, arn: &str) -> bool {
        let mut parts = arn.split(':');
        let account = parts.nth(4).unwrap_or_default().to_string();
        let name = arn.rsplit('/').next().unwrap_or_default().to_string();
        let Some(policy) = self.trusts.get(&(account, name)) else {
            return false;
        };
        let caller = self.account_of(call);
        let external_id = call.param("ExternalId");
        let list = |v: Option<&serde_json::Value>| -> Vec<String> {
            match v {
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let statements = match policy.get("Statement") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(one) => vec![one.clone()],
            None => Vec::new(),
        };
        statements.iter().any(|st| {
            let allows = st.get("Effect").and_then(|e| e.as_str()) == Some("Allow");
            let action = list(st.get("Action"))
                .iter()
                .any(|a| ["sts:AssumeRole", "sts:*", "*"].contains(&a.as_str()));
            let principal = list(st.get("Principal").and_then(|p| p.get("AWS")))
                .iter()
                .any(|p| p == "*" || *p == caller || p.split(':').nth(4) == Some(caller.as_str()));
            let external = st
                .get("Condition")
                .and_then(|c| c.get("StringEquals"))
                .and_then(|c| c.get("sts:ExternalId"));
            let external_ok = match external {
                None => true,
                Some(v) => external_id.is_some_and(|id| list(Some(v)).iter().any(|x| x == id)),
            };
            allows && action && principal && external_ok
        })
    }

    /// A DescribeRegions answer as EC2 gives it in `account`: the Regions of `partition`, each
    /// disabled one `not-opted-in`, and those left out unless `all`.
    fn restate_regions(
        &self,
        body: &str,
        account: &str,
        all: bool,
        partition: &str,
    ) -> Option<String> {
        let open = body.find("<regionInfo>")? + "<regionInfo>".len();
        let close = open + body[open..].find("</regionInfo>")?;
        let mut items = String::new();
        let mut rest = &body[open..close];
        while let Some(start) = rest.find("<item>") {
            let end = start + rest[start..].find("</item>")? + "</item>".len();
            let item = &rest[start..end];
            rest = &rest[end..];
            let name = element(item, "regionName").unwrap_or_default().trim();
            if partition_of(name) != partition {
                continue;
            }
            let mut status = element(item, "optInStatus")
                .unwrap_or("opt-in-not-required")
                .trim()
                .to_string();
            if self.region_disabled(account, name) {
                status = "not-opted-in".to_string();
            }
            if status == "not-opted-in" && !all {
                continue;
            }
            let endpoint = element(item, "regionEndpoint").unwrap_or_default();
            items.push_str(&format!(
                "<item><regionName>{name}</regionName><regionEndpoint>{endpoint}</regionEndpoint>\
                 <optInStatus>{status}</optInStatus></item>"
            ));
        }
        Some(format!("{}{items}{}", &body[..open], &body[close..]))
    }

    fn role_not_ready(&mut self) -> Plan {
        self.counters.role_not_ready += 1;
        let id = self.request_id();
        let body = serde_json::json!({
            "Type": "User",
            "message": "The role defined for the function cannot be assumed by Lambda."
        })
        .to_string();
        Plan::Answer(lambda_error(
            400,
            "InvalidParameterValueException",
            body,
            &id,
        ))
    }

    fn after(&mut self, after: After, answer: &mut Message) {
        let now = Instant::now();
        let status = answer.head.status();
        if !(200..300).contains(&status) {
            return;
        }
        match after {
            After::Nothing => {}
            After::CreateRole(name, trust) => {
                if let Some((account, Some(policy))) = trust {
                    self.trusts.insert((account, name.clone()), policy);
                }
                self.roles.insert(name, now);
            }
            After::TrustPolicy(account, name, policy) => {
                if let Some(policy) = policy {
                    self.trusts.insert((account, name), policy);
                }
            }
            After::AssumeRole => {
                let body = String::from_utf8_lossy(&answer.decoded_body()).into_owned();
                let key = element(&body, "AccessKeyId");
                // arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION
                let account = element(&body, "Arn").and_then(|a| a.split(':').nth(4));
                if let (Some(key), Some(account)) = (key, account) {
                    self.keys
                        .insert(key.trim().to_string(), account.to_string());
                }
            }
            After::DescribeRegions {
                account,
                all,
                partition,
            } => {
                let body = String::from_utf8_lossy(&answer.decoded_body()).into_owned();
                if let Some(changed) = self.restate_regions(&body, &account, all, partition) {
                    answer.set_body(changed.into_bytes());
                }
            }
            After::DeleteRole(name) => {
                self.roles.remove(&name);
            }
            After::CreateFunction => {
                let Some((name, arn)) = function_identity(&answer.decoded_body(), false) else {
                    return;
                };
                if self.config.lambda_pending.is_zero() {
                    // A function made again under an old name starts afresh.
                    self.functions.remove(&name);
                    return;
                }
                let function = Function {
                    arn,
                    pending_until: now + self.config.lambda_pending,
                    updating_until: now,
                };
                restate(answer, false, function.phase(now));
                self.functions.insert(name, function);
            }
            After::UpdateFunction(name) => {
                let update = self.config.lambda_update;
                if !update.is_zero() {
                    let arn = function_identity(&answer.decoded_body(), false)
                        .map(|(_, arn)| arn)
                        .unwrap_or_default();
                    let function = self.functions.entry(name.clone()).or_insert(Function {
                        arn,
                        pending_until: now,
                        updating_until: now,
                    });
                    function.updating_until = now + update;
                }
                if let Some(function) = self.functions.get(&name) {
                    restate(answer, false, function.phase(now));
                }
            }
            After::ReadFunction { name, nested } => {
                let Some(function) = self.functions.get(&name) else {
                    return;
                };
                let phase = function.phase(now);
                if restate(answer, nested, phase) && phase != Phase::Ready {
                    self.counters.lambda_not_ready_reads += 1;
                }
            }
            After::DeleteFunction(name) => {
                self.functions.remove(&name);
            }
            After::DeleteObjects(errors) => {
                let body = String::from_utf8_lossy(&answer.decoded_body()).into_owned();
                let Some(at) = body.rfind("</DeleteResult>") else {
                    return;
                };
                let mut changed = body[..at].to_string();
                changed.push_str(&delete_errors_xml(&errors));
                changed.push_str(&body[at..]);
                answer.set_body(changed.into_bytes());
                self.counters.undeletable += errors.len() as u64;
            }
        }
    }
}

/// `(FunctionName, FunctionArn)` of a Lambda answer (a FunctionConfiguration, or GetFunction's
/// `{"Configuration": ...}` when `nested`).
fn function_identity(body: &[u8], nested: bool) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let config = if nested {
        value.get("Configuration")?
    } else {
        &value
    };
    Some((
        config.get("FunctionName")?.as_str()?.to_string(),
        config.get("FunctionArn")?.as_str()?.to_string(),
    ))
}

/// Writes the function's state into a Lambda answer, as AWS reports it in that phase. Returns
/// false when the answer was not a function configuration.
fn restate(answer: &mut Message, nested: bool, phase: Phase) -> bool {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&answer.decoded_body()) else {
        return false;
    };
    let config = if nested {
        value.get_mut("Configuration")
    } else {
        Some(&mut value)
    };
    let Some(config) = config.and_then(|c| c.as_object_mut()) else {
        return false;
    };
    // Reasons accompany Pending and failures; a function in progress or done carries none.
    for field in [
        "StateReason",
        "StateReasonCode",
        "LastUpdateStatusReason",
        "LastUpdateStatusReasonCode",
    ] {
        config.remove(field);
    }
    let (state, update) = match phase {
        Phase::Pending => {
            config.insert(
                "StateReason".into(),
                "The function is being created.".into(),
            );
            config.insert("StateReasonCode".into(), "Creating".into());
            ("Pending", "InProgress")
        }
        Phase::Updating => ("Active", "InProgress"),
        Phase::Ready => ("Active", "Successful"),
    };
    config.insert("State".into(), state.into());
    config.insert("LastUpdateStatus".into(), update.into());
    match serde_json::to_vec(&value) {
        Ok(body) => {
            answer.set_body(body);
            true
        }
        Err(_) => false,
    }
}

fn delete_errors_xml(errors: &[(String, Option<String>)]) -> String {
    errors
        .iter()
        .map(|(key, version)| {
            let version = version
                .as_deref()
                .map(|v| format!("<VersionId>{}</VersionId>", xml_escape(v)))
                .unwrap_or_default();
            format!(
                "<Error><Key>{}</Key>{version}<Code>AccessDenied</Code>\
                 <Message>Access Denied</Message></Error>",
                xml_escape(key)
            )
        })
        .collect()
}

/// The header of S3's `ExpectedBucketOwner` parameter.
const EXPECTED_OWNER: &str = "x-amz-expected-bucket-owner";

// ---------------------------------------------------------------------------------------------
// AWS error answers.

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        409 => "Conflict",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// An answer made by the proxy. A HEAD request's answer has no body.
fn respond(status: u16, headers: &[(&str, String)], body: Vec<u8>, head_only: bool) -> Message {
    let mut head = Head {
        line: format!("HTTP/1.1 {status} {}", reason(status)),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        raw: None,
    };
    let body = if head_only { Vec::new() } else { body };
    head.set("Content-Length", body.len().to_string());
    Message {
        head,
        body,
        chunked: false,
    }
}

/// Lambda (REST-JSON): the code in `x-amzn-ErrorType`, the message in the JSON body.
fn lambda_error(status: u16, code: &str, body: String, id: &str) -> Message {
    respond(
        status,
        &[
            ("Content-Type", "application/json".into()),
            ("x-amzn-ErrorType", code.into()),
            ("x-amzn-RequestId", id.into()),
        ],
        body.into_bytes(),
        false,
    )
}

/// EC2 (its own query dialect): `Response` / `Errors` XML.
fn ec2_error(status: u16, code: &str, message: &str, id: &str, head_only: bool) -> Message {
    respond(
        status,
        &[
            ("Content-Type", "text/xml;charset=UTF-8".into()),
            ("x-amzn-RequestId", id.into()),
        ],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
             <Code>{code}</Code><Message>{}</Message></Error></Errors><RequestID>{id}</RequestID>\
             </Response>",
            xml_escape(message)
        )
        .into_bytes(),
        head_only,
    )
}

/// The account moto serves a request in when its access key is not one moto issued.
const MOTO_DEFAULT_ACCOUNT: &str = "123456789012";

/// The partition of a region name.
fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Query protocols (IAM, STS, SNS, CloudWatch): `ErrorResponse` XML.
fn query_error(status: u16, code: &str, message: &str, id: &str) -> Message {
    respond(
        status,
        &[
            ("Content-Type", "text/xml".into()),
            ("x-amzn-RequestId", id.into()),
        ],
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message>\
             </Error><RequestId>{id}</RequestId></ErrorResponse>",
            xml_escape(message)
        )
        .into_bytes(),
        false,
    )
}

/// S3 (REST-XML): an `Error` document; `extra` holds code-specific elements.
fn s3_error(
    status: u16,
    code: &str,
    message: &str,
    extra: &str,
    id: &str,
    head_only: bool,
) -> Message {
    respond(
        status,
        &[
            ("Content-Type", "application/xml".into()),
            ("x-amz-request-id", id.into()),
        ],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{message}</Message>{extra}<RequestId>{id}</RequestId></Error>"
        )
        .into_bytes(),
        head_only,
    )
}

// ---------------------------------------------------------------------------------------------
// What a request is: service, kind, operation.

struct Call {
    service: String,
    /// The access key the request was signed with, from its credential scope.
    access_key: Option<String>,
    /// The region it was signed for, from its credential scope.
    region: Option<String>,
    kind: String,
    method: String,
    /// The request target's path, still percent-encoded.
    path: String,
    query: String,
    content_type: Option<String>,
    /// Query-protocol parameters (form body), decoded.
    form: Option<Vec<(String, String)>>,
    /// The body without transfer framing.
    body: Vec<u8>,
}

impl Call {
    fn new(request: &Message) -> Call {
        let mut words = request.head.line.split_whitespace();
        let method = words.next().unwrap_or("?").to_string();
        let target = words.next().unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let body = request.decoded_body();
        let service = service(&request.head, query);
        let target_header = request.head.header("x-amz-target");
        let text = String::from_utf8_lossy(&body);
        let action = text.split('&').find_map(|kv| kv.strip_prefix("Action="));
        let kind = match (target_header, action) {
            (Some(t), _) => format!("{service}:{}", t.rsplit('.').next().unwrap_or(t)),
            (None, Some(action)) => format!("{service}:{action}"),
            (None, None) => format!("{service}:{method} {}", rest_shape(path, query)),
        };
        let form = (target_header.is_none() && action.is_some()).then(|| params(&text));
        let scope = request
            .head
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .map(|c| c.split([',', ' ']).next().unwrap_or(c).to_string());
        let scope_part = |n: usize| {
            scope
                .as_deref()
                .and_then(|c| c.split('/').nth(n))
                .map(str::to_string)
        };
        Call {
            service,
            access_key: scope_part(0),
            region: scope_part(2),
            kind,
            method,
            path: path.to_string(),
            query: query.to_string(),
            content_type: request.head.header("content-type").map(str::to_string),
            form,
            body,
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.form
            .as_ref()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The signing name from the SigV4 credential scope (`Credential=AKID/date/region/SERVICE/...`),
/// in the `Authorization` header or, for presigned URLs, `X-Amz-Credential`.
fn service(head: &Head, query: &str) -> String {
    let from_header = head
        .header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .map(str::to_string);
    let presigned = || {
        params(query)
            .into_iter()
            .find(|(k, _)| k == "X-Amz-Credential")
            .and_then(|(_, v)| v.split('/').nth(3).map(str::to_string))
    };
    from_header
        .or_else(presigned)
        .unwrap_or_else(|| "unknown".into())
}

/// `?sub1&sub2` for REST requests naming sub-resources, else the path's first two segments
/// (and `*` for deeper ones): `/2015-03-31/functions/NAME` -> `/2015-03-31/functions/*`.
fn rest_shape(path: &str, query: &str) -> String {
    let subresources: Vec<&str> = query
        .split('&')
        .filter(|q| !q.is_empty() && !q.contains('='))
        .collect();
    if !subresources.is_empty() {
        return format!("?{}", subresources.join("&"));
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut shaped: Vec<&str> = parts.iter().take(2).copied().collect();
    if parts.len() > 2 {
        shaped.push("*");
    }
    format!("/{}", shaped.join("/"))
}

/// Query parameters with no value (`?delete`, `?versioning=`): S3 sub-resources.
fn bare_params(query: &str) -> Vec<&str> {
    query
        .split('&')
        .filter(|q| !q.is_empty())
        .filter_map(|q| match q.split_once('=') {
            None => Some(q),
            Some((k, "")) => Some(k),
            Some(_) => None,
        })
        .collect()
}

/// Path-style S3: `(bucket, key)`, both decoded.
fn s3_target(path: &str) -> (String, String) {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    (percent_decode(bucket, false), percent_decode(key, false))
}

#[derive(Debug, PartialEq, Eq)]
enum LambdaOp {
    Create,
    UpdateConfiguration(String),
    UpdateCode(String),
    Get(String),
    GetConfiguration(String),
    Delete(String),
    Other,
}

/// The Lambda operation of a REST request on `/2015-03-31/functions...` that the proxy tracks.
/// Requests naming a published version or alias are `Other`: only `$LATEST` has these states here.
fn lambda_op(method: &str, path: &str, query: &str) -> LambdaOp {
    let Some(rest) = path.strip_prefix("/2015-03-31/functions") else {
        return LambdaOp::Other;
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return if method == "POST" {
            LambdaOp::Create
        } else {
            LambdaOp::Other
        };
    }
    let (name, mut qualifier) = function_name(segments[0]);
    if let Some((_, q)) = params(query).into_iter().find(|(k, _)| k == "Qualifier") {
        qualifier = Some(q);
    }
    if qualifier.is_some_and(|q| q != "$LATEST") {
        return LambdaOp::Other;
    }
    match (method, &segments[1..]) {
        ("GET", []) => LambdaOp::Get(name),
        ("DELETE", []) => LambdaOp::Delete(name),
        ("GET", ["configuration"]) => LambdaOp::GetConfiguration(name),
        ("PUT", ["configuration"]) => LambdaOp::UpdateConfiguration(name),
        ("PUT", ["code"]) => LambdaOp::UpdateCode(name),
        _ => LambdaOp::Other,
    }
}

/// A function's name from the path segment that names it: a name, a full or partial ARN, either
/// with a `:qualifier`, percent-encoded or not.
fn function_name(segment: &str) -> (String, Option<String>) {
    let decoded = percent_decode(segment, false);
    let short = match decoded.find("function:") {
        Some(at) => &decoded[at + "function:".len()..],
        None => decoded.as_str(),
    };
    let mut parts = short.splitn(2, ':');
    let name = parts.next().unwrap_or_default().to_string();
    (name, parts.next().map(str::to_string))
}

// ---------------------------------------------------------------------------------------------
// Small codecs: percent-encoding, forms, XML.

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' && plus_is_space { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` (or a query string) as decoded pairs.
fn params(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One `<Object>` of a DeleteObjects body: its byte range and what it names.
struct DeleteEntry {
    start: usize,
    end: usize,
    key: String,
    version: Option<String>,
}

fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let from = xml.find(&open)? + open.len();
    let to = from + xml[from..].find(&close)?;
    Some(&xml[from..to])
}

fn delete_entries(body: &str) -> Vec<DeleteEntry> {
    let mut entries = Vec::new();
    let mut at = 0;
    while let Some(found) = body[at..].find("<Object") {
        let start = at + found;
        let after_name = start + "<Object".len();
        // `<Object>` or `<Object attr=...>`, not some longer element name.
        if !body[after_name..].starts_with(['>', ' ', '\t', '\r', '\n']) {
            at = after_name;
            continue;
        }
        let Some(close) = body[start..].find("</Object>") else {
            break;
        };
        let end = start + close + "</Object>".len();
        let inner = &body[start..end];
        if let Some(key) = element(inner, "Key") {
            entries.push(DeleteEntry {
                start,
                end,
                key: xml_unescape(key),
                version: element(inner, "VersionId").map(xml_unescape),
            });
        }
        at = end;
    }
    entries
}

/// splitmix64: small, seeded, good enough for test decisions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 messages.

struct Head {
    /// Request line or status line, without its line end.
    line: String,
    headers: Vec<(String, String)>,
    /// The bytes as received, while nothing was changed: passed through as they came.
    raw: Option<Vec<u8>>,
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn remove(&mut self, name: &str) {
        let before = self.headers.len();
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if self.headers.len() != before {
            self.raw = None;
        }
    }

    fn set(&mut self, name: &str, value: String) {
        self.remove(name);
        self.headers.push((name.to_string(), value));
        self.raw = None;
    }

    /// The status code of a response head (0 when it is not one).
    fn status(&self) -> u16 {
        self.line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn framing(&self, is_request: bool, no_body: bool) -> Framing {
        if no_body {
            return Framing::Empty;
        }
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            return Framing::Chunked;
        }
        if let Some(len) = self.header("content-length") {
            return Framing::Length(len.trim().parse().unwrap_or(0));
        }
        if is_request {
            Framing::Empty
        } else {
            Framing::UntilClose
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        if let Some(raw) = &self.raw {
            out.extend_from_slice(raw);
            return;
        }
        out.extend_from_slice(self.line.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

struct Message {
    head: Head,
    /// The body as framed on the wire (chunk sizes included when `chunked`).
    body: Vec<u8>,
    chunked: bool,
}

impl Message {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        self.head.write_to(&mut out);
        out.extend_from_slice(&self.body);
        out
    }

    fn decoded_body(&self) -> Vec<u8> {
        if self.chunked {
            dechunk(&self.body)
        } else {
            self.body.clone()
        }
    }

    /// Replaces the body, sent with Content-Length from now on.
    fn set_body(&mut self, body: Vec<u8>) {
        self.head.remove("transfer-encoding");
        self.head.set("Content-Length", body.len().to_string());
        self.body = body;
        self.chunked = false;
    }
}

/// Errors that mean the peer closed a kept-alive connection before this exchange began.
fn closed_early(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Reads a message head; `None` when the connection closed before one began.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let start = raw.len();
        match r.read_until(b'\n', &mut raw) {
            Ok(0) if raw.is_empty() => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if raw.is_empty() && closed_early(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        let line = &raw[start..];
        if line == b"\r\n" || line == b"\n" {
            if start == 0 {
                // Blank lines before a message are allowed (RFC 9112, 2.2).
                raw.clear();
                continue;
            }
            break;
        }
        if raw.len() > 1 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message head over 1 MB",
            ));
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.lines();
    let line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Ok(Some(Head {
        line,
        headers,
        raw: Some(raw),
    }))
}

/// Reads a body as framed; returns its wire bytes and whether they are chunked.
fn read_body(r: &mut impl BufRead, framing: Framing) -> io::Result<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    match framing {
        Framing::Empty => Ok((body, false)),
        Framing::Length(len) => {
            let mut body = vec![0; len];
            r.read_exact(&mut body)?;
            Ok((body, false))
        }
        Framing::UntilClose => {
            match r.read_to_end(&mut body) {
                Ok(_) => {}
                // TLS peers may close without close_notify; the body is what arrived.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(e) => return Err(e),
            }
            Ok((body, false))
        }
        Framing::Chunked => loop {
            let start = read_line(r, &mut body)?;
            let size = chunk_size(&body[start..]);
            if size == 0 {
                // Trailer fields up to the blank line.
                loop {
                    let start = read_line(r, &mut body)?;
                    if body[start..] == *b"\r\n" || body[start..] == *b"\n" {
                        return Ok((body, true));
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(r, &mut body)?;
        },
    }
}

/// Appends one line to `buf`; returns where it starts.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<usize> {
    let start = buf.len();
    if r.read_until(b'\n', buf)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(start)
}

fn chunk_size(line: &[u8]) -> usize {
    let text = String::from_utf8_lossy(line);
    let size = text.split(';').next().unwrap_or("").trim();
    usize::from_str_radix(size, 16).unwrap_or(0)
}

/// The data of a chunked body.
fn dechunk(mut wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = wire.iter().position(|&b| b == b'\n') {
        let size = chunk_size(&wire[..end]);
        wire = &wire[end + 1..];
        if size == 0 || size > wire.len() {
            break;
        }
        out.extend_from_slice(&wire[..size]);
        wire = &wire[size..];
        // The CRLF after the data.
        let skip = wire
            .iter()
            .position(|&b| b == b'\n')
            .map_or(wire.len(), |p| p + 1);
        wire = &wire[skip..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The connection to moto: plain TCP or TLS (rustls, trusting only the test certificate).

struct Upstream {
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn tls_config(ca: &Path) -> rustls::ClientConfig {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .unwrap_or_else(|e| panic!("fidelity proxy: cannot read {}: {e}", ca.display()));
    for cert in certs {
        let cert =
            cert.unwrap_or_else(|e| panic!("fidelity proxy: bad PEM in {}: {e}", ca.display()));
        roots
            .add(cert)
            .unwrap_or_else(|e| panic!("fidelity proxy: bad certificate {}: {e}", ca.display()));
    }
    // An explicit provider: the process may have none installed, or more than one compiled in.
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("fidelity proxy: TLS setup: {e}"))
    .with_root_certificates(roots)
    .with_no_client_auth()
}

impl Upstream {
    fn connect(&self) -> io::Result<BufReader<Conn>> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))?;
        tcp.set_nodelay(true)?;
        // moto answers within seconds; a wedged one fails the request instead of the test hanging.
        tcp.set_read_timeout(Some(Duration::from_secs(300)))?;
        let conn = match &self.tls {
            None => Conn::Plain(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
                    .map_err(io::Error::other)?;
                let client = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(io::Error::other)?;
                Conn::Tls(Box::new(rustls::StreamOwned::new(client, tcp)))
            }
        };
        Ok(BufReader::new(conn))
    }

    /// Sends `request` on the connection (made or remade as needed) and reads the answer. A
    /// connection moto closed while idle is remade once; a request that got any answer is never
    /// sent twice.
    fn exchange(
        &self,
        conn: &mut Option<BufReader<Conn>>,
        request: &Message,
        head_request: bool,
    ) -> io::Result<Message> {
        let bytes = request.to_bytes();
        let mut last_error = None;
        for _ in 0..2 {
            let fresh = conn.is_none();
            if fresh {
                *conn = Some(self.connect()?);
            }
            let Some(c) = conn.as_mut() else {
                continue;
            };
            let sent = c
                .get_mut()
                .write_all(&bytes)
                .and_then(|()| c.get_mut().flush());
            let head = match sent.and_then(|()| read_answer_head(c)) {
                Ok(Some(head)) => head,
                Ok(None) => {
                    *conn = None;
                    last_error = Some(io::Error::from(io::ErrorKind::UnexpectedEof));
                    continue;
                }
                Err(e) if closed_early(&e) && !fresh => {
                    *conn = None;
                    last_error = Some(e);
                    continue;
                }
                Err(e) => {
                    *conn = None;
                    return Err(e);
                }
            };
            let status = head.status();
            let no_body = head_request || status == 204 || status == 304;
            let framing = head.framing(false, no_body);
            let until_close = matches!(framing, Framing::UntilClose);
            let (body, chunked) = match read_body(c, framing) {
                Ok(body) => body,
                Err(e) => {
                    *conn = None;
                    return Err(e);
                }
            };
            let mut answer = Message {
                head,
                body,
                chunked,
            };
            let closing = answer
                .head
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if until_close || closing {
                // This upstream connection is done; the client's stays open, so the answer
                // gets a length and no Connection: close.
                *conn = None;
                answer.head.remove("connection");
                if until_close {
                    answer
                        .head
                        .set("Content-Length", answer.body.len().to_string());
                }
            }
            return Ok(answer);
        }
        Err(last_error.unwrap_or_else(|| io::ErrorKind::NotConnected.into()))
    }
}

/// The final answer head, skipping interim 1xx answers.
fn read_answer_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    loop {
        let Some(head) = read_head(r)? else {
            return Ok(None);
        };
        let status = head.status();
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok(Some(head));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_the_bench_proxy() {
        assert_eq!(
            rest_shape("/2015-03-31/functions/f/configuration", ""),
            "/2015-03-31/functions/*"
        );
        assert_eq!(rest_shape("/bucket", "versioning"), "?versioning");
        assert_eq!(rest_shape("/bucket/key", "x-id=GetObject"), "/bucket/key");
        assert_eq!(rest_shape("/", ""), "/");
    }

    #[test]
    fn function_names_from_paths() {
        assert_eq!(function_name("f"), ("f".into(), None));
        assert_eq!(
            function_name(
                "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af%3A%24LATEST"
            ),
            ("f".into(), Some("$LATEST".into()))
        );
        assert_eq!(function_name("123456789012:function:f"), ("f".into(), None));
        assert_eq!(
            lambda_op("PUT", "/2015-03-31/functions/f/configuration", ""),
            LambdaOp::UpdateConfiguration("f".into())
        );
        assert_eq!(
            lambda_op("GET", "/2015-03-31/functions/f", "Qualifier=1"),
            LambdaOp::Other
        );
        assert_eq!(
            lambda_op("POST", "/2015-03-31/functions", ""),
            LambdaOp::Create
        );
        assert_eq!(
            lambda_op("POST", "/2015-03-31/functions/f/invocations", ""),
            LambdaOp::Other
        );
    }

    #[test]
    fn delete_bodies_parse_with_escapes() {
        let body = "<Delete xmlns=\"x\"><Object><Key>r&amp;d/&lt;a&gt;</Key><VersionId>v1</VersionId></Object>\
                    <Object><Key>free</Key></Object><Quiet>false</Quiet></Delete>";
        let entries = delete_entries(body);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].key, "r&d/<a>");
        assert_eq!(entries[0].version.as_deref(), Some("v1"));
        assert_eq!(
            &body[entries[1].start..entries[1].end],
            "<Object><Key>free</Key></Object>"
        );
        assert_eq!(xml_unescape("&#65;&#x42;&bogus"), "AB&bogus");
    }

    #[test]
    fn chunked_bodies_decode() {
        let mut reader =
            io::Cursor::new(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nT: 1\r\n\r\nNEXT".to_vec());
        let (wire, chunked) = read_body(&mut reader, Framing::Chunked).expect("read");
        assert!(chunked);
        assert_eq!(dechunk(&wire), b"Wikipedia");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).expect("rest");
        assert_eq!(rest, "NEXT");
    }

    #[test]
    fn percent_and_forms() {
        assert_eq!(percent_decode("a%2Fb+c%", true), "a/b c%");
        assert_eq!(
            params("Action=CreateRole&RoleName=r%2B1"),
            vec![
                ("Action".into(), "CreateRole".into()),
                ("RoleName".into(), "r+1".into())
            ]
        );
        assert_eq!(
            bare_params("delete&x-id=DeleteObjects&versions="),
            vec!["delete", "versions"]
        );
    }

    #[test]
    fn draws_are_seeded() {
        let mut a = SplitMix(7);
        let mut b = SplitMix(7);
        let xs: Vec<f64> = (0..5).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..5).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
    }
}
