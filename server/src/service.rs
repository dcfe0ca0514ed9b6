//! The per-request service every listener serves: gRPC requests (content type
//! `application/grpc`) go to the tonic routes, counted as go-grpc-prometheus counts them;
//! everything else goes to the HTTP endpoints (`http.rs`), as etcd's cmux splits them.
//!
//! The gRPC path stays allocation-free on top of tonic's own work: the method is found in a
//! fixed table, the counters are atomics, and the response body is wrapped in place (an
//! enum, not a box) to read the final `grpc-status` from the trailers.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap, HeaderValue, Request, Response};
use tonic::service::Routes;
use tower_service::Service;

use crate::http::{HttpCtx, Reply, handle};
use crate::metrics::{CODE_CANCELED, CODE_UNKNOWN, METRICS, grpc_method};

/// Routes one request: gRPC (client listeners only) or an HTTP endpoint.
#[derive(Clone)]
pub(crate) struct Dispatch {
    /// The gRPC services; `None` on a metrics listener.
    pub(crate) grpc: Option<Routes>,
    /// Behind one `Arc`: hyper clones the service for every request.
    pub(crate) http: Arc<HttpCtx>,
}

impl Service<Request<Body>> for Dispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = DispatchFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.grpc {
            Some(g) => <Routes as Service<Request<Body>>>::poll_ready(g, cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let is_grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if let (true, Some(grpc)) = (is_grpc, &mut self.grpc) {
            let method = grpc_method(req.uri().path());
            if let Some(m) = method {
                METRICS.grpc_started(m);
            }
            return DispatchFuture::Grpc {
                inner: grpc.call(req),
                method,
            };
        }
        let ctx = self.http.clone();
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        DispatchFuture::Http {
            inner: Box::pin(
                async move { into_response(handle(&ctx, &method, &path, &query).await) },
            ),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Dispatch::call`].
    #[project = DispatchProj]
    pub(crate) enum DispatchFuture {
        Grpc {
            #[pin]
            inner: <Routes as Service<Request<Body>>>::Future,
            method: Option<usize>,
        },
        Http {
            inner: Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>,
        },
    }
}

impl Future for DispatchFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DispatchProj::Grpc { inner, method } => {
                let resp = match ready!(inner.poll(cx)) {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                let mut method = method.take();
                // A trailers-only answer (every error tonic returns from a handler) carries
                // its status in the headers: the call is over.
                if let Some(m) = method
                    && let Some(code) = grpc_status(resp.headers())
                {
                    METRICS.grpc_handled(m, code);
                    method = None;
                }
                Poll::Ready(Ok(resp.map(|inner| ResponseBody::Grpc { inner, method })))
            }
            DispatchProj::Http { inner } => inner.as_mut().poll(cx).map(Ok),
        }
    }
}

fn grpc_status(h: &HeaderMap) -> Option<u32> {
    let v = h.get("grpc-status")?;
    Some(
        v.to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(CODE_UNKNOWN),
    )
}

/// A response body: tonic's (watched for the final status) or a whole HTTP answer.
pub(crate) enum ResponseBody {
    Grpc {
        inner: Body,
        /// The method whose call is still open (its status not yet counted).
        method: Option<usize>,
    },
    Full(Option<Bytes>),
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Grpc { inner, method } => {
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                if let Some(m) = *method {
                    let code = match &frame {
                        Some(Ok(f)) => f.trailers_ref().map(|t| grpc_status(t).unwrap_or(0)),
                        Some(Err(_)) | None => Some(CODE_UNKNOWN),
                    };
                    if let Some(code) = code {
                        METRICS.grpc_handled(m, code);
                        *method = None;
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(b) => b.is_none(),
            ResponseBody::Grpc { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Grpc { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The stream went away before its status (the client cancelled or disconnected).
        if let ResponseBody::Grpc {
            method: Some(m), ..
        } = self
        {
            METRICS.grpc_handled(*m, CODE_CANCELED);
        }
    }
}

fn into_response(r: Reply) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::Full(Some(Bytes::from(r.body))));
    *resp.status_mut() =
        http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(r.content_type),
    );
    if r.nosniff {
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
    }
    if let Some(allow) = r.allow {
        h.insert(http::header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}
