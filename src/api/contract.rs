//! The API's contract as `proto/lemonade/v1/api.proto` states it: for each
//! method of its services, the HTTP method, the path template and which
//! request fields are the body (`google.api.http`), the request and answer
//! messages, the fields a client must set (`google.api.field_behavior`) and
//! the comments. The router takes its paths from here and the OpenAPI
//! document everything else, so neither can drift from the proto.

use std::sync::OnceLock;

use axum::http::Method;
use prost_reflect::{
    DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, ServiceDescriptor,
    Value,
};

/// The package whose services are the API.
pub const PACKAGE: &str = "lemonade.v1";

/// The compiled descriptors of `proto/` (with imports and comments).
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // Built from `proto/` at compile time; `contract_is_complete`
        // decodes it in every test run.
        DescriptorPool::decode(crate::proto::DESCRIPTOR_SET).unwrap_or_default()
    })
}

/// How one method of a service is served over HTTP.
#[derive(Debug, Clone)]
pub struct HttpRule {
    /// `Service.Method`, as the route registry names it.
    pub rpc: String,
    pub service: String,
    pub method: Method,
    /// A path template such as `/v1/devices/{device_id}`.
    pub path: String,
    /// `*` (the whole request is the body), a field's name, or empty
    /// (no body: the fields not in the path are query parameters).
    pub body: String,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
    /// The method's comment in the proto.
    pub comment: String,
}

impl HttpRule {
    /// Names of the path template's variables, in order.
    pub fn path_params(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect()
    }

    /// The message the body carries: the whole request for `*`, the named
    /// field's message otherwise (the path's fields stay out of the body);
    /// None when there is no body or the field is not a message.
    pub fn body_message(&self) -> Option<MessageDescriptor> {
        match self.body.as_str() {
            "" => None,
            "*" => Some(self.input.clone()),
            field => match self.input.get_field_by_name(field)?.kind() {
                Kind::Message(message) => Some(message),
                _ => None,
            },
        }
    }

    /// Fields of the request sent as query parameters.
    pub fn query_fields(&self) -> Vec<FieldDescriptor> {
        if !self.body.is_empty() {
            return Vec::new();
        }
        let path = self.path_params();
        self.input
            .fields()
            .filter(|f| !path.contains(&f.name()))
            .collect()
    }
}

/// The services of [`PACKAGE`].
pub fn services() -> impl Iterator<Item = ServiceDescriptor> {
    pool().services().filter(|s| s.package_name() == PACKAGE)
}

/// Every method of every service, with its HTTP rule.
pub fn rules() -> Vec<HttpRule> {
    services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .filter_map(|m| http_rule(&m))
        .collect()
}

/// The rule of `Service.Method`.
pub fn rule(rpc: &str) -> Option<HttpRule> {
    let (service, method) = rpc.split_once('.')?;
    let service = pool().get_service_by_name(&format!("{PACKAGE}.{service}"))?;
    let method = service.methods().find(|m| m.name() == method)?;
    http_rule(&method)
}

fn http_rule(method: &MethodDescriptor) -> Option<HttpRule> {
    let extension = pool().get_extension_by_name("google.api.http")?;
    let options = method.options();
    let Value::Message(rule) = options.get_extension(&extension).into_owned() else {
        return None;
    };
    let text = |name: &str| match rule.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let (verb, path) = ["get", "put", "post", "delete", "patch"]
        .into_iter()
        .find(|verb| rule.has_field_by_name(verb))
        .map(|verb| (verb.to_ascii_uppercase(), text(verb)))
        .or_else(|| custom_pattern(&rule))?;
    Some(HttpRule {
        rpc: format!("{}.{}", method.parent_service().name(), method.name()),
        service: method.parent_service().name().to_string(),
        method: Method::from_bytes(verb.as_bytes()).ok()?,
        path,
        body: text("body"),
        input: method.input(),
        output: method.output(),
        comment: comment(method.parent_file(), method.path()),
    })
}

fn custom_pattern(rule: &prost_reflect::DynamicMessage) -> Option<(String, String)> {
    let Value::Message(custom) = rule.get_field_by_name("custom")?.into_owned() else {
        return None;
    };
    let field = |name: &str| match custom.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    Some((field("kind")?, field("path")?))
}

/// Whether a request field is marked `(google.api.field_behavior) = REQUIRED`.
pub fn is_required(field: &FieldDescriptor) -> bool {
    const REQUIRED: i32 = 2;
    let Some(extension) = pool().get_extension_by_name("google.api.field_behavior") else {
        return false;
    };
    let options = field.options();
    match options.get_extension(&extension).as_ref() {
        Value::List(values) => values
            .iter()
            .any(|v| matches!(v, Value::EnumNumber(REQUIRED))),
        _ => false,
    }
}

/// The comment before the element at `path` of `file`, trimmed.
pub fn comment(file: prost_reflect::FileDescriptor, path: &[i32]) -> String {
    file.file_descriptor_proto()
        .source_code_info
        .as_ref()
        .and_then(|info| info.location.iter().find(|l| l.path == path))
        .and_then(|l| l.leading_comments.as_deref())
        .map(|c| c.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_is_complete() {
        let rules = rules();
        assert!(rules.len() >= 30, "only {} rules", rules.len());
        let create = rule("Accounts.CreateAccount").expect("CreateAccount");
        assert_eq!(create.method, Method::POST);
        assert_eq!(create.path, "/v1/accounts");
        assert_eq!(create.body, "*");
        assert_eq!(create.input.name(), "CreateAccountRequest");
        assert!(
            create.comment.starts_with("Registers"),
            "{}",
            create.comment
        );
        let head = rule("Send.HeadUpload").expect("HeadUpload");
        assert_eq!(head.method, Method::HEAD);
        assert_eq!(head.path_params(), ["upload_id"]);
        let search = rule("Mail.SearchMessages").expect("SearchMessages");
        let query: Vec<_> = search
            .query_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert!(query.contains(&"cursor".to_string()), "{query:?}");
        assert_eq!(
            create.body_message().unwrap().name(),
            "CreateAccountRequest"
        );
        let update = rule("Devices.UpdateDevice").expect("UpdateDevice");
        assert_eq!(update.path_params(), ["device_id"]);
        assert_eq!(update.body_message().unwrap().name(), "DeviceChanges");
        let email = create.input.get_field_by_name("email").expect("email");
        assert!(is_required(&email));
        let smtp = create.input.get_field_by_name("smtp").expect("smtp");
        assert!(!is_required(&smtp));
    }
}
