import Foundation
import XCTest

/// The test bundle's resources: Python's golden vectors, written by ios_demo/tools/make_test_resources.py into
/// ShuffleNetDemoTests/Resources (a folder reference, copied as "Resources"), and the bundled model files that
/// project.yml adds to this target when `sdeploy bundle --app ios` has run.
enum TestResources {
    private final class Token {}

    static var bundle: Bundle { Bundle(for: Token.self) }

    /// A file under Resources/; a missing one fails the test with the command that writes it.
    static func url(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let url = bundle.resourceURL!.appendingPathComponent("Resources").appendingPathComponent(path)
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("\(path) is not in the test bundle: run python ios_demo/tools/make_test_resources.py from the "
                + "repository root, then xcodegen generate and test again", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        return url
    }

    static func data(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> Data {
        try Data(contentsOf: url(path, file: file, line: line))
    }

    static func decode<T: Decodable>(_ type: T.Type, from path: String, file: StaticString = #filePath,
                                     line: UInt = #line) throws -> T {
        try JSONDecoder().decode(T.self, from: data(path, file: file, line: line))
    }

    static func golden(file: StaticString = #filePath, line: UInt = #line) throws -> Golden {
        try decode(Golden.self, from: "golden/golden.json", file: file, line: line)
    }
}

/// golden.json (`sdeploy demo golden`, schema sdeploy-golden/1): only the parts the iOS app implements.
struct Golden: Decodable {
    struct ImageCase: Decodable {
        let name: String
        let png: String
        let width: Int
        let height: Int
        let rgbaB64: String

        enum CodingKeys: String, CodingKey {
            case name, png, width, height
            case rgbaB64 = "rgba_b64"
        }
    }

    struct TopKCase: Decodable {
        let logitsF64leB64: String
        let k: Int
        let indices: [Int]
        let probabilities: [Double]
        let softmaxF64leB64: String

        enum CodingKeys: String, CodingKey {
            case k, indices, probabilities
            case logitsF64leB64 = "logits_f64le_b64"
            case softmaxF64leB64 = "softmax_f64le_b64"
        }
    }

    struct LabelCase: Decodable {
        let text: String
        let labels: [String]
    }

    struct CompareCase: Decodable {
        struct Result: Decodable {
            let verdict: String
            let maxAbsError: Double
            let maxRelError: Double
            let minCosine: Double
            let top1Agreement: Double
            let decisiveTop1Agreement: Double

            enum CodingKeys: String, CodingKey {
                case verdict
                case maxAbsError = "max_abs_error"
                case maxRelError = "max_rel_error"
                case minCosine = "min_cosine"
                case top1Agreement = "top1_agreement"
                case decisiveTop1Agreement = "decisive_top1_agreement"
            }
        }

        let name: String
        let tolerance: Tolerance
        let outputs: [[Double]]
        let expected: [[Double]]
        let result: Result
    }

    let schema: String
    let images: [ImageCase]
    let topk: [TopKCase]
    let labels: [LabelCase]
    let selftestCompare: [CompareCase]

    enum CodingKeys: String, CodingKey {
        case schema, images, topk, labels
        case selftestCompare = "selftest_compare"
    }
}

/// ios_golden.json (make_test_resources.py): where Python's contract samples each model-input pixel, and the
/// model copy's size rule.
struct IOSGolden: Decodable {
    struct ROICase: Decodable {
        let width: Int
        let height: Int
        let imgSize: Int
        let resizeSize: Int
        let contractX: [Double]
        let contractY: [Double]
        /// Positions whose filter window the picture's border does not cut (the ones to compare).
        let interiorX: [Bool]
        let interiorY: [Bool]
        let centerCropError: Double
        let centredSquareError: Double

        enum CodingKeys: String, CodingKey {
            case width, height
            case imgSize = "img_size"
            case resizeSize = "resize_size"
            case contractX = "contract_x"
            case contractY = "contract_y"
            case interiorX = "interior_x"
            case interiorY = "interior_y"
            case centerCropError = "center_crop_error"
            case centredSquareError = "centred_square_error"
        }
    }

    struct CopyCase: Decodable {
        let width: Int
        let height: Int
        let resizeSize: Int
        let maxPixelSize: Int?

        enum CodingKeys: String, CodingKey {
            case width, height
            case resizeSize = "resize_size"
            case maxPixelSize = "max_pixel_size"
        }
    }

    struct ScalerCase: Decodable {
        struct Contract: Decodable {
            let imgSize: Int
            let resizeSize: Int
            let pixelsF32leB64: String

            enum CodingKeys: String, CodingKey {
                case imgSize = "img_size"
                case resizeSize = "resize_size"
                case pixelsF32leB64 = "pixels_f32le_b64"
            }
        }

        let name: String
        let width: Int
        let height: Int
        let pngBase64: String
        let contracts: [Contract]

        enum CodingKeys: String, CodingKey {
            case name, width, height, contracts
            case pngBase64 = "png_base64"
        }
    }

    let schema: String
    let factor: Int
    let displayMax: Int
    let roi: [ROICase]
    let scaler: [ScalerCase]
    let modelCopy: [CopyCase]

    enum CodingKeys: String, CodingKey {
        case schema, factor, roi, scaler
        case displayMax = "display_max"
        case modelCopy = "model_copy"
    }
}

enum Base64 {
    /// Little-endian float64 values, as golden.json stores logits and probabilities.
    static func float64LE(_ text: String) throws -> [Double] {
        let data = try XCTUnwrap(Data(base64Encoded: text))
        XCTAssertEqual(data.count % 8, 0)
        return data.withUnsafeBytes { raw in
            (0..<(raw.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }

    /// Little-endian float32 values (Python's resized pixels in ios_golden.json), widened to Double.
    static func float32LE(_ text: String) throws -> [Double] {
        let data = try XCTUnwrap(Data(base64Encoded: text))
        XCTAssertEqual(data.count % 4, 0)
        return data.withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map {
                Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))))
            }
        }
    }

    static func bytes(_ text: String) throws -> [UInt8] {
        [UInt8](try XCTUnwrap(Data(base64Encoded: text)))
    }
}

/// Relative-or-absolute closeness for golden comparisons.
func assertClose(_ actual: Double, _ expected: Double, tolerance: Double = 1e-12, _ message: @autoclosure () -> String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    let scale = max(1.0, abs(expected))
    if actual.isInfinite || expected.isInfinite {
        XCTAssertEqual(actual, expected, message(), file: file, line: line)
    } else {
        XCTAssertLessThanOrEqual(abs(actual - expected), tolerance * scale, "\(message()): \(actual) vs \(expected)",
                                 file: file, line: line)
    }
}
