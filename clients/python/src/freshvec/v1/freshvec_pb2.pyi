from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]
    METRIC_DOT: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    ENCODING_INT8: _ClassVar[Encoding]
    ENCODING_F32: _ClassVar[Encoding]

class FieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_TYPE_UNSPECIFIED: _ClassVar[FieldType]
    FIELD_TYPE_KEYWORD: _ClassVar[FieldType]
    FIELD_TYPE_INTEGER: _ClassVar[FieldType]
    FIELD_TYPE_FLOAT: _ClassVar[FieldType]
    FIELD_TYPE_BOOL: _ClassVar[FieldType]
    FIELD_TYPE_DATETIME: _ClassVar[FieldType]

class NullValue(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NULL_VALUE: _ClassVar[NullValue]

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_UNSPECIFIED: _ClassVar[Consistency]
    CONSISTENCY_LOCAL: _ClassVar[Consistency]
    CONSISTENCY_MIN_APPLIED_INDEX: _ClassVar[Consistency]
    CONSISTENCY_LINEARIZABLE: _ClassVar[Consistency]

class FilterStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILTER_STRATEGY_UNSPECIFIED: _ClassVar[FilterStrategy]
    FILTER_STRATEGY_NONE: _ClassVar[FilterStrategy]
    FILTER_STRATEGY_EMPTY: _ClassVar[FilterStrategy]
    FILTER_STRATEGY_EXACT: _ClassVar[FilterStrategy]
    FILTER_STRATEGY_POSTINGS: _ClassVar[FilterStrategy]
    FILTER_STRATEGY_FALLBACK: _ClassVar[FilterStrategy]
    FILTER_STRATEGY_MIXED: _ClassVar[FilterStrategy]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_LEADER: _ClassVar[Role]
    ROLE_FOLLOWER: _ClassVar[Role]
    ROLE_CANDIDATE: _ClassVar[Role]
    ROLE_LEARNER: _ClassVar[Role]
METRIC_UNSPECIFIED: Metric
METRIC_L2: Metric
METRIC_DOT: Metric
METRIC_COSINE: Metric
ENCODING_UNSPECIFIED: Encoding
ENCODING_INT8: Encoding
ENCODING_F32: Encoding
FIELD_TYPE_UNSPECIFIED: FieldType
FIELD_TYPE_KEYWORD: FieldType
FIELD_TYPE_INTEGER: FieldType
FIELD_TYPE_FLOAT: FieldType
FIELD_TYPE_BOOL: FieldType
FIELD_TYPE_DATETIME: FieldType
NULL_VALUE: NullValue
CONSISTENCY_UNSPECIFIED: Consistency
CONSISTENCY_LOCAL: Consistency
CONSISTENCY_MIN_APPLIED_INDEX: Consistency
CONSISTENCY_LINEARIZABLE: Consistency
FILTER_STRATEGY_UNSPECIFIED: FilterStrategy
FILTER_STRATEGY_NONE: FilterStrategy
FILTER_STRATEGY_EMPTY: FilterStrategy
FILTER_STRATEGY_EXACT: FilterStrategy
FILTER_STRATEGY_POSTINGS: FilterStrategy
FILTER_STRATEGY_FALLBACK: FilterStrategy
FILTER_STRATEGY_MIXED: FilterStrategy
ROLE_UNSPECIFIED: Role
ROLE_LEADER: Role
ROLE_FOLLOWER: Role
ROLE_CANDIDATE: Role
ROLE_LEARNER: Role

class IndexParameters(_message.Message):
    __slots__ = ("posting_size", "split_limit", "merge_limit", "replicas", "encoding")
    POSTING_SIZE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MERGE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    posting_size: int
    split_limit: int
    merge_limit: int
    replicas: int
    encoding: Encoding
    def __init__(self, posting_size: _Optional[int] = ..., split_limit: _Optional[int] = ..., merge_limit: _Optional[int] = ..., replicas: _Optional[int] = ..., encoding: _Optional[_Union[Encoding, str]] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dimension", "metric", "shards", "index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    metric: Metric
    shards: int
    index: IndexParameters
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., shards: _Optional[int] = ..., index: _Optional[_Union[IndexParameters, _Mapping]] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DescribeCollectionResponse(_message.Message):
    __slots__ = ("name", "dimension", "metric", "shards", "encoding", "vectors", "postings", "splits", "merges", "reassigned", "pending_jobs", "memory_bytes", "applied_index", "calibrated_shards", "calibration_queries", "default_nprobe", "estimated_recall", "calibration", "field_indexes", "payload_memory_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    POSTINGS_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    MERGES_FIELD_NUMBER: _ClassVar[int]
    REASSIGNED_FIELD_NUMBER: _ClassVar[int]
    PENDING_JOBS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_SHARDS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_QUERIES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_NPROBE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_RECALL_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    FIELD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    metric: Metric
    shards: int
    encoding: Encoding
    vectors: int
    postings: int
    splits: int
    merges: int
    reassigned: int
    pending_jobs: int
    memory_bytes: int
    applied_index: int
    calibrated_shards: int
    calibration_queries: int
    default_nprobe: int
    estimated_recall: float
    calibration: _containers.RepeatedCompositeFieldContainer[CalibrationPoint]
    field_indexes: _containers.RepeatedCompositeFieldContainer[FieldIndex]
    payload_memory_bytes: int
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., shards: _Optional[int] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., vectors: _Optional[int] = ..., postings: _Optional[int] = ..., splits: _Optional[int] = ..., merges: _Optional[int] = ..., reassigned: _Optional[int] = ..., pending_jobs: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., applied_index: _Optional[int] = ..., calibrated_shards: _Optional[int] = ..., calibration_queries: _Optional[int] = ..., default_nprobe: _Optional[int] = ..., estimated_recall: _Optional[float] = ..., calibration: _Optional[_Iterable[_Union[CalibrationPoint, _Mapping]]] = ..., field_indexes: _Optional[_Iterable[_Union[FieldIndex, _Mapping]]] = ..., payload_memory_bytes: _Optional[int] = ...) -> None: ...

class FieldIndex(_message.Message):
    __slots__ = ("key", "type", "points", "values", "memory_bytes")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    key: str
    type: FieldType
    points: int
    values: int
    memory_bytes: int
    def __init__(self, key: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ..., points: _Optional[int] = ..., values: _Optional[int] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class CreateFieldIndexRequest(_message.Message):
    __slots__ = ("collection", "key", "type")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    key: str
    type: FieldType
    def __init__(self, collection: _Optional[str] = ..., key: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ...) -> None: ...

class DropFieldIndexRequest(_message.Message):
    __slots__ = ("collection", "key")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    collection: str
    key: str
    def __init__(self, collection: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class CalibrationPoint(_message.Message):
    __slots__ = ("nprobe", "recall")
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    nprobe: int
    recall: float
    def __init__(self, nprobe: _Optional[int] = ..., recall: _Optional[float] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("null_value", "bool_value", "integer_value", "double_value", "string_value", "list_value", "struct_value")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INTEGER_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRUCT_VALUE_FIELD_NUMBER: _ClassVar[int]
    null_value: NullValue
    bool_value: bool
    integer_value: int
    double_value: float
    string_value: str
    list_value: ListValue
    struct_value: Struct
    def __init__(self, null_value: _Optional[_Union[NullValue, str]] = ..., bool_value: bool = ..., integer_value: _Optional[int] = ..., double_value: _Optional[float] = ..., string_value: _Optional[str] = ..., list_value: _Optional[_Union[ListValue, _Mapping]] = ..., struct_value: _Optional[_Union[Struct, _Mapping]] = ...) -> None: ...

class ListValue(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Struct(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, Value]
    def __init__(self, fields: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class WithPayload(_message.Message):
    __slots__ = ("enable", "include", "exclude")
    ENABLE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    enable: bool
    include: _containers.RepeatedScalarFieldContainer[str]
    exclude: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enable: bool = ..., include: _Optional[_Iterable[str]] = ..., exclude: _Optional[_Iterable[str]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("must", "should", "must_not", "min_should")
    MUST_FIELD_NUMBER: _ClassVar[int]
    SHOULD_FIELD_NUMBER: _ClassVar[int]
    MUST_NOT_FIELD_NUMBER: _ClassVar[int]
    MIN_SHOULD_FIELD_NUMBER: _ClassVar[int]
    must: _containers.RepeatedCompositeFieldContainer[Condition]
    should: _containers.RepeatedCompositeFieldContainer[Condition]
    must_not: _containers.RepeatedCompositeFieldContainer[Condition]
    min_should: MinShould
    def __init__(self, must: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., should: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., must_not: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., min_should: _Optional[_Union[MinShould, _Mapping]] = ...) -> None: ...

class MinShould(_message.Message):
    __slots__ = ("conditions", "min_count")
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    min_count: int
    def __init__(self, conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., min_count: _Optional[int] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("field", "is_empty", "is_null", "has_id", "filter")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    IS_EMPTY_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    HAS_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    field: FieldCondition
    is_empty: IsEmptyCondition
    is_null: IsNullCondition
    has_id: HasIdCondition
    filter: Filter
    def __init__(self, field: _Optional[_Union[FieldCondition, _Mapping]] = ..., is_empty: _Optional[_Union[IsEmptyCondition, _Mapping]] = ..., is_null: _Optional[_Union[IsNullCondition, _Mapping]] = ..., has_id: _Optional[_Union[HasIdCondition, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class FieldCondition(_message.Message):
    __slots__ = ("key", "match", "range", "datetime_range")
    KEY_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    key: str
    match: Match
    range: Range
    datetime_range: DatetimeRange
    def __init__(self, key: _Optional[str] = ..., match: _Optional[_Union[Match, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., datetime_range: _Optional[_Union[DatetimeRange, _Mapping]] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("keyword", "integer", "boolean", "keywords", "integers", "except_keywords", "except_integers")
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    INTEGERS_FIELD_NUMBER: _ClassVar[int]
    EXCEPT_KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    EXCEPT_INTEGERS_FIELD_NUMBER: _ClassVar[int]
    keyword: str
    integer: int
    boolean: bool
    keywords: RepeatedStrings
    integers: RepeatedIntegers
    except_keywords: RepeatedStrings
    except_integers: RepeatedIntegers
    def __init__(self, keyword: _Optional[str] = ..., integer: _Optional[int] = ..., boolean: bool = ..., keywords: _Optional[_Union[RepeatedStrings, _Mapping]] = ..., integers: _Optional[_Union[RepeatedIntegers, _Mapping]] = ..., except_keywords: _Optional[_Union[RepeatedStrings, _Mapping]] = ..., except_integers: _Optional[_Union[RepeatedIntegers, _Mapping]] = ...) -> None: ...

class RepeatedStrings(_message.Message):
    __slots__ = ("strings",)
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    strings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, strings: _Optional[_Iterable[str]] = ...) -> None: ...

class RepeatedIntegers(_message.Message):
    __slots__ = ("integers",)
    INTEGERS_FIELD_NUMBER: _ClassVar[int]
    integers: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, integers: _Optional[_Iterable[int]] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("lt", "gt", "gte", "lte")
    LT_FIELD_NUMBER: _ClassVar[int]
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    lt: float
    gt: float
    gte: float
    lte: float
    def __init__(self, lt: _Optional[float] = ..., gt: _Optional[float] = ..., gte: _Optional[float] = ..., lte: _Optional[float] = ...) -> None: ...

class DatetimeRange(_message.Message):
    __slots__ = ("lt", "gt", "gte", "lte")
    LT_FIELD_NUMBER: _ClassVar[int]
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    lt: str
    gt: str
    gte: str
    lte: str
    def __init__(self, lt: _Optional[str] = ..., gt: _Optional[str] = ..., gte: _Optional[str] = ..., lte: _Optional[str] = ...) -> None: ...

class IsEmptyCondition(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class IsNullCondition(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class HasIdCondition(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SetPayloadRequest(_message.Message):
    __slots__ = ("collection", "payload", "ids", "filter")
    class PayloadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    payload: _containers.MessageMap[str, Value]
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., payload: _Optional[_Mapping[str, Value]] = ..., ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class DeletePayloadKeysRequest(_message.Message):
    __slots__ = ("collection", "keys", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class ClearPayloadRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "filter", "offset", "limit", "with_payload", "with_vectors", "consistency", "min_applied_index")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    MIN_APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    offset: int
    limit: int
    with_payload: WithPayload
    with_vectors: bool
    consistency: Consistency
    min_applied_index: int
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., with_payload: _Optional[_Union[WithPayload, _Mapping]] = ..., with_vectors: bool = ..., consistency: _Optional[_Union[Consistency, str]] = ..., min_applied_index: _Optional[int] = ...) -> None: ...

class ScrollResponse(_message.Message):
    __slots__ = ("points", "next_page_offset", "applied_index")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    next_page_offset: int
    applied_index: int
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., next_page_offset: _Optional[int] = ..., applied_index: _Optional[int] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter", "consistency", "min_applied_index")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    MIN_APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    consistency: Consistency
    min_applied_index: int
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., consistency: _Optional[_Union[Consistency, str]] = ..., min_applied_index: _Optional[int] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count", "applied_index")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    count: int
    applied_index: int
    def __init__(self, count: _Optional[int] = ..., applied_index: _Optional[int] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("id", "vector", "vector_f32", "payload")
    class PayloadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    id: int
    vector: _containers.RepeatedScalarFieldContainer[float]
    vector_f32: bytes
    payload: _containers.MessageMap[str, Value]
    def __init__(self, id: _Optional[int] = ..., vector: _Optional[_Iterable[float]] = ..., vector_f32: _Optional[bytes] = ..., payload: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "points", "ids", "vectors_f32", "payloads")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_F32_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: _containers.RepeatedCompositeFieldContainer[Point]
    ids: _containers.RepeatedScalarFieldContainer[int]
    vectors_f32: bytes
    payloads: _containers.RepeatedCompositeFieldContainer[Struct]
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., ids: _Optional[_Iterable[int]] = ..., vectors_f32: _Optional[bytes] = ..., payloads: _Optional[_Iterable[_Union[Struct, _Mapping]]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class WriteResponse(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vectors", "consistency", "min_applied_index", "vectors_f32", "with_payload")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    MIN_APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    VECTORS_F32_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    with_vectors: bool
    consistency: Consistency
    min_applied_index: int
    vectors_f32: bool
    with_payload: WithPayload
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., with_vectors: bool = ..., consistency: _Optional[_Union[Consistency, str]] = ..., min_applied_index: _Optional[int] = ..., vectors_f32: bool = ..., with_payload: _Optional[_Union[WithPayload, _Mapping]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class SearchParameters(_message.Message):
    __slots__ = ("k", "nprobe", "rerank", "exact", "consistency", "min_applied_index", "target_recall")
    K_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    MIN_APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    k: int
    nprobe: int
    rerank: int
    exact: bool
    consistency: Consistency
    min_applied_index: int
    target_recall: float
    def __init__(self, k: _Optional[int] = ..., nprobe: _Optional[int] = ..., rerank: _Optional[int] = ..., exact: bool = ..., consistency: _Optional[_Union[Consistency, str]] = ..., min_applied_index: _Optional[int] = ..., target_recall: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "vector", "params", "vector_f32", "packed_hits", "filter", "with_payload", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    PACKED_HITS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    params: SearchParameters
    vector_f32: bytes
    packed_hits: bool
    filter: Filter
    with_payload: WithPayload
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., params: _Optional[_Union[SearchParameters, _Mapping]] = ..., vector_f32: _Optional[bytes] = ..., packed_hits: bool = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., with_payload: _Optional[_Union[WithPayload, _Mapping]] = ..., with_vectors: bool = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "distance", "payload", "vector")
    class PayloadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    distance: float
    payload: _containers.MessageMap[str, Value]
    vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[int] = ..., distance: _Optional[float] = ..., payload: _Optional[_Mapping[str, Value]] = ..., vector: _Optional[_Iterable[float]] = ...) -> None: ...

class SearchPlan(_message.Message):
    __slots__ = ("strategy", "matched", "exact_shards", "fallback_shards", "postings", "scanned", "unindexed")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    EXACT_SHARDS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_SHARDS_FIELD_NUMBER: _ClassVar[int]
    POSTINGS_FIELD_NUMBER: _ClassVar[int]
    SCANNED_FIELD_NUMBER: _ClassVar[int]
    UNINDEXED_FIELD_NUMBER: _ClassVar[int]
    strategy: FilterStrategy
    matched: int
    exact_shards: int
    fallback_shards: int
    postings: int
    scanned: int
    unindexed: bool
    def __init__(self, strategy: _Optional[_Union[FilterStrategy, str]] = ..., matched: _Optional[int] = ..., exact_shards: _Optional[int] = ..., fallback_shards: _Optional[int] = ..., postings: _Optional[int] = ..., scanned: _Optional[int] = ..., unindexed: bool = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "applied_index", "ids_u64", "distances_f32", "plan")
    HITS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    IDS_U64_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_F32_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    applied_index: int
    ids_u64: bytes
    distances_f32: bytes
    plan: SearchPlan
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., applied_index: _Optional[int] = ..., ids_u64: _Optional[bytes] = ..., distances_f32: _Optional[bytes] = ..., plan: _Optional[_Union[SearchPlan, _Mapping]] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("vector", "vector_f32")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    VECTOR_F32_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    vector_f32: bytes
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., vector_f32: _Optional[bytes] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("collection", "queries", "params", "packed_hits", "filter", "with_payload", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    PACKED_HITS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: _containers.RepeatedCompositeFieldContainer[Query]
    params: SearchParameters
    packed_hits: bool
    filter: Filter
    with_payload: WithPayload
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., params: _Optional[_Union[SearchParameters, _Mapping]] = ..., packed_hits: bool = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., with_payload: _Optional[_Union[WithPayload, _Mapping]] = ..., with_vectors: bool = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResponse, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CollectionDigest(_message.Message):
    __slots__ = ("name", "digest", "vectors")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    name: str
    digest: int
    vectors: int
    def __init__(self, name: _Optional[str] = ..., digest: _Optional[int] = ..., vectors: _Optional[int] = ...) -> None: ...

class PeerStatus(_message.Message):
    __slots__ = ("node_id", "address", "matched_index", "lag", "snapshots_installed", "voter")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    VOTER_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    address: str
    matched_index: int
    lag: int
    snapshots_installed: int
    voter: bool
    def __init__(self, node_id: _Optional[int] = ..., address: _Optional[str] = ..., matched_index: _Optional[int] = ..., lag: _Optional[int] = ..., snapshots_installed: _Optional[int] = ..., voter: bool = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("node_id", "role", "leader_id", "term", "last_log_index", "committed_index", "applied_index", "purged_index", "snapshot_index", "collections", "peers", "snapshots_installed", "snapshot_transfers_in_progress", "last_snapshot_install_ms", "address", "voters", "first_log_index")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    PURGED_INDEX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_TRANSFERS_IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    LAST_SNAPSHOT_INSTALL_MS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    FIRST_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    role: Role
    leader_id: int
    term: int
    last_log_index: int
    committed_index: int
    applied_index: int
    purged_index: int
    snapshot_index: int
    collections: _containers.RepeatedCompositeFieldContainer[CollectionDigest]
    peers: _containers.RepeatedCompositeFieldContainer[PeerStatus]
    snapshots_installed: int
    snapshot_transfers_in_progress: int
    last_snapshot_install_ms: int
    address: str
    voters: _containers.RepeatedScalarFieldContainer[int]
    first_log_index: int
    def __init__(self, node_id: _Optional[int] = ..., role: _Optional[_Union[Role, str]] = ..., leader_id: _Optional[int] = ..., term: _Optional[int] = ..., last_log_index: _Optional[int] = ..., committed_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., purged_index: _Optional[int] = ..., snapshot_index: _Optional[int] = ..., collections: _Optional[_Iterable[_Union[CollectionDigest, _Mapping]]] = ..., peers: _Optional[_Iterable[_Union[PeerStatus, _Mapping]]] = ..., snapshots_installed: _Optional[int] = ..., snapshot_transfers_in_progress: _Optional[int] = ..., last_snapshot_install_ms: _Optional[int] = ..., address: _Optional[str] = ..., voters: _Optional[_Iterable[int]] = ..., first_log_index: _Optional[int] = ...) -> None: ...

class PurgeLogRequest(_message.Message):
    __slots__ = ("upto",)
    UPTO_FIELD_NUMBER: _ClassVar[int]
    upto: int
    def __init__(self, upto: _Optional[int] = ...) -> None: ...

class PurgeLogResponse(_message.Message):
    __slots__ = ("purged_index",)
    PURGED_INDEX_FIELD_NUMBER: _ClassVar[int]
    purged_index: int
    def __init__(self, purged_index: _Optional[int] = ...) -> None: ...

class TriggerSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TriggerSnapshotResponse(_message.Message):
    __slots__ = ("snapshot_index",)
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    snapshot_index: int
    def __init__(self, snapshot_index: _Optional[int] = ...) -> None: ...

class AddNodeRequest(_message.Message):
    __slots__ = ("node_id", "address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    address: str
    def __init__(self, node_id: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class MembershipResponse(_message.Message):
    __slots__ = ("voters", "learners")
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ...) -> None: ...
