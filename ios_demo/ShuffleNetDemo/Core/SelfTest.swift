import CryptoKit
import Foundation

/// selftest.json (docs/app-protocol.md, schema `sdeploy-selftest/1`): a few full-size PNGs with eager PyTorch's
/// outputs for them, and the tolerance `sdeploy verify` applies to this artifact.
struct SelfTestFile: Decodable, Sendable {
    static let schema = "sdeploy-selftest/1"

    let schema: String
    let arch: String
    let artifact: String
    let precision: String
    let sha256: String
    let outputKind: String
    let tolerance: Tolerance
    let runs: Runs
    let images: [Image]

    enum CodingKeys: String, CodingKey {
        case schema, arch, artifact, precision, sha256, tolerance, runs, images
        case outputKind = "output_kind"
    }

    struct Runs: Decodable, Sendable {
        let warmup: Int
        let timed: Int
    }

    struct Image: Decodable, Sendable {
        let name: String
        let pngBase64: String
        let pngSha256: String
        /// sha256 of the decoded RGB pixels; copied into the report unchanged (sdeploy verify matches on it).
        let pixelsSha256: String?
        let expected: [Double]

        enum CodingKeys: String, CodingKey {
            case name, expected
            case pngBase64 = "png_base64"
            case pngSha256 = "png_sha256"
            case pixelsSha256 = "pixels_sha256"
        }
    }

    static func decode(_ data: Data) throws -> SelfTestFile {
        let file: SelfTestFile
        do {
            file = try JSONDecoder().decode(SelfTestFile.self, from: data)
        } catch {
            throw DemoError.badConfig("selftest.json cannot be read: run sdeploy bundle --app ios again")
        }
        guard file.schema == schema else {
            throw DemoError.badConfig("selftest.json has schema \(file.schema); this app reads \(schema)")
        }
        guard ["logits", "probabilities"].contains(file.outputKind) else {
            throw DemoError.badConfig("selftest.json compares \(file.outputKind), not logits or probabilities")
        }
        guard !file.images.isEmpty else {
            throw DemoError.badConfig("selftest.json has no images")
        }
        return file
    }
}

/// Who ran the self-test, for the device report.
struct DeviceInfo: Sendable {
    /// e.g. "iPhone16,1 / iOS 18.1"
    let device: String
    /// e.g. "Core ML (iOS 18.1)"
    let runtime: String
    /// The compute units the model was loaded with, e.g. "computeUnits=all".
    let accelerator: String
}

/// The device report (docs/app-protocol.md, schema `sdeploy-device-report/1`) that the Self-test action exports
/// and `sdeploy verify EXPORT_DIR --device-report FILE` checks. Keys the protocol lists are always written
/// (null when unknown).
struct DeviceReport: Encodable, Sendable {
    static let schema = "sdeploy-device-report/1"

    struct ImageResult: Encodable, Sendable {
        let name: String
        let pngSha256: String
        let pixelsSha256: String?
        let expected: [Double]
        let output: [Double]

        enum CodingKeys: String, CodingKey {
            case name, expected, output
            case pngSha256 = "png_sha256"
            case pixelsSha256 = "pixels_sha256"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(pngSha256, forKey: .pngSha256)
            try container.encode(pixelsSha256, forKey: .pixelsSha256)
            try container.encode(expected, forKey: .expected)
            try container.encode(output, forKey: .output)
        }
    }

    let created: Date
    let artifact: String
    /// The model's sha256 from selftest.json.
    let sha256: String
    /// A sha256 the app computed over the model it loaded: nil, because the app holds the compiled .mlmodelc,
    /// whose hash nothing on the Python side knows.
    let modelSha256: String?
    let device: DeviceInfo
    /// "PASS", "FAIL" or "ERROR".
    let verdict: String
    let metrics: SelfTestMetrics?
    let medianMilliseconds: Double?
    let error: String?
    let images: [ImageResult]

    enum CodingKeys: String, CodingKey {
        case schema, created, app, artifact, sha256, runtime, accelerator, device, verdict, error, images
        case modelSha256 = "model_sha256"
        case maxAbsError = "max_abs_error"
        case maxRelError = "max_rel_error"
        case minCosine = "min_cosine"
        case top1Agreement = "top1_agreement"
        case decisiveTop1Agreement = "decisive_top1_agreement"
        case medianMilliseconds = "median_ms"
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.schema, forKey: .schema)
        try container.encode(created.formatted(.iso8601), forKey: .created)
        try container.encode("ios", forKey: .app)
        try container.encode(artifact, forKey: .artifact)
        try container.encode(sha256, forKey: .sha256)
        try container.encode(modelSha256, forKey: .modelSha256)
        try container.encode(device.runtime, forKey: .runtime)
        try container.encode(device.accelerator, forKey: .accelerator)
        try container.encode(device.device, forKey: .device)
        try container.encode(verdict, forKey: .verdict)
        try container.encode(metrics?.maxAbsError, forKey: .maxAbsError)
        try container.encode(metrics?.maxRelError, forKey: .maxRelError)
        try container.encode(metrics?.minCosine, forKey: .minCosine)
        try container.encode(metrics?.top1Agreement, forKey: .top1Agreement)
        try container.encode(metrics?.decisiveTop1Agreement, forKey: .decisiveTop1Agreement)
        try container.encode(medianMilliseconds, forKey: .medianMilliseconds)
        try container.encode(error, forKey: .error)
        try container.encode(images, forKey: .images)
    }

    /// The report as JSON. NaN and infinities are written as JSON's non-standard NaN / Infinity, which Python reads.
    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: Self.positiveInfinity, negativeInfinity: Self.negativeInfinity, nan: Self.notANumber)
        var text = String(decoding: try encoder.encode(self), as: UTF8.self)
        for (marker, literal) in [(Self.negativeInfinity, "-Infinity"), (Self.positiveInfinity, "Infinity"),
                                  (Self.notANumber, "NaN")] {
            text = text.replacingOccurrences(of: "\"\(marker)\"", with: literal)
        }
        return Data(text.utf8)
    }

    private static let positiveInfinity = "sdeploy:+inf"
    private static let negativeInfinity = "sdeploy:-inf"
    private static let notANumber = "sdeploy:nan"

    /// A file name that says what was tested, for the share sheet.
    var fileName: String {
        "device-report-\(artifact)-\(verdict)-\(Int(created.timeIntervalSince1970)).json"
    }
}

/// The Self-test action: every selftest.json image through the app's own path, then the comparison.
enum SelfTestRunner {
    /// Never throws: a model or file problem becomes an ERROR report with the message.
    static func run(_ file: SelfTestFile, classifier: Classifier, device: DeviceInfo) async -> DeviceReport {
        var results: [DeviceReport.ImageResult] = []
        do {
            if let sha256 = classifier.config.sha256, sha256 != file.sha256 {
                throw DemoError.badConfig("selftest.json belongs to another model (sha256 \(file.sha256.prefix(12))…, "
                    + "the app's is \(sha256.prefix(12))…): run sdeploy bundle --app ios again")
            }
            var prepared: [PreparedImage] = []
            for image in file.images {
                try Task.checkCancellation()
                guard let png = Data(base64Encoded: image.pngBase64) else {
                    throw DemoError.badConfig("selftest.json: \(image.name) is not base64")
                }
                guard sha256Hex(png) == image.pngSha256 else {
                    throw DemoError.badConfig("selftest.json: \(image.name) does not match its png_sha256")
                }
                // Exactly what a picked photo goes through: ImageIO decode and downsampling, Core ML crop/scale.
                let picture = try await classifier.prepare(png)
                let run = try await classifier.run(picture)
                var output = run.values
                if file.outputKind == "probabilities" && run.areLogits {
                    output = Scores.softmax(output)
                } else if file.outputKind == "logits" && !run.areLogits {
                    throw DemoError.badOutput("selftest.json expects logits, but the model only outputs probabilities")
                }
                prepared.append(picture)
                results.append(DeviceReport.ImageResult(name: image.name, pngSha256: image.pngSha256,
                                                        pixelsSha256: image.pixelsSha256, expected: image.expected,
                                                        output: output))
            }
            let metrics = try SelfTestMetrics.compare(outputs: results.map(\.output), expected: results.map(\.expected),
                                                      tolerance: file.tolerance)
            try Task.checkCancellation()
            let times = try await classifier.latencies(prepared[0], warmup: file.runs.warmup, timed: file.runs.timed)
            return DeviceReport(created: .now, artifact: file.artifact, sha256: file.sha256, modelSha256: nil,
                                device: device, verdict: metrics.verdict, metrics: metrics,
                                medianMilliseconds: median(times), error: nil, images: results)
        } catch {
            return errorReport(error, file: file, device: device, images: results)
        }
    }

    static func errorReport(_ error: Error, file: SelfTestFile?, device: DeviceInfo,
                            images: [DeviceReport.ImageResult] = []) -> DeviceReport {
        let message = (error as? LocalizedError)?.errorDescription ?? error.localizedDescription
        return DeviceReport(created: .now, artifact: file?.artifact ?? "coreml", sha256: file?.sha256 ?? "",
                            modelSha256: nil, device: device, verdict: "ERROR", metrics: nil, medianMilliseconds: nil,
                            error: message, images: images)
    }

    /// The median (the mean of the middle two for an even count), as NumPy's median; nil when empty.
    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    static func sha256Hex(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}
