import CoreML
import Observation
import PhotosUI
import SwiftUI
import UIKit

/// What the user asked to classify. Every pick makes a new request (a new `id`), so picking the same photo again
/// runs again, and `.task(id:)` cancels the work for the previous request.
struct ImageRequest: Equatable {
    enum Source: Equatable {
        case sample
        case library(PhotosPickerItem)
        case camera(UIImage)
    }

    let id = UUID()
    let source: Source
}

/// The screen's state. Main-actor isolated; decoding and inference run on the `Classifier` actor.
@MainActor
@Observable
final class DemoModel {
    /// The picture on screen: the copy the model gets too (at most 2048 px), never the full-size photo.
    private(set) var image: UIImage?
    private(set) var predictions: [Prediction] = []
    private(set) var milliseconds: Double?
    private(set) var message: String? = "Loading the model…"
    private(set) var modelSummary: String?
    private(set) var isRunning = false
    private(set) var selfTest: SelfTestState = .idle

    /// The request whose results may be shown; results of any other request are dropped.
    @ObservationIgnored private var current: UUID?
    @ObservationIgnored private var loading: Task<Classifier, Error>?

    /// The app's classifier, loaded once, off the main thread (Core ML compiles the model for the device on
    /// first launch, which takes seconds).
    func loadClassifier() async throws -> Classifier {
        if let loading {
            return try await loading.value
        }
        let bundled = try BundledModel.load(from: .main)
        let task = Task.detached(priority: .userInitiated) { try Classifier(bundled) }
        loading = task
        let classifier = try await task.value
        let config = classifier.config
        modelSummary = "\(config.arch) · \(config.precision) · \(config.weights.kind) weights · "
            + "\(config.preprocess.imgSize)×\(config.preprocess.imgSize) centre crop of "
            + "\(Int((config.cropRatio * 100).rounded())) % of the short side"
        return classifier
    }

    /// Shows and classifies one picture. Called from `.task(id:)`: a newer request cancels this one, and nothing
    /// this one computes is shown once it is no longer the current request.
    func show(_ request: ImageRequest) async {
        current = request.id
        predictions = []
        milliseconds = nil
        isRunning = true
        do {
            let classifier = try await loadClassifier()
            let data = try await Self.data(for: request.source)
            try Task.checkCancellation()
            let picture = try await classifier.prepare(data)
            guard isCurrent(request) else { return }
            image = UIImage(cgImage: picture.image)
            let result = try await classifier.classify(picture, top: 5)
            guard isCurrent(request) else { return }
            predictions = result.predictions
            milliseconds = result.milliseconds
            message = nil
        } catch {
            guard isCurrent(request) else { return }
            message = (error as? LocalizedError)?.errorDescription ?? error.localizedDescription
        }
        isRunning = false
    }

    private func isCurrent(_ request: ImageRequest) -> Bool {
        !Task.isCancelled && current == request.id
    }

    /// The picture's encoded bytes: ImageIO decodes them (`ImageLoader`), downsampled, off the main thread.
    private static func data(for source: ImageRequest.Source) async throws -> Data {
        switch source {
        case .sample:
            guard let data = UIImage(named: "Sample")?.pngData() else {
                throw DemoError.unreadableImage("The bundled sample image is missing.")
            }
            return data
        case .library(let item):
            // The original file (HEIC, JPEG, PNG...), with its EXIF orientation and colour profile.
            guard let data = try await item.loadTransferable(type: Data.self) else {
                throw DemoError.unreadableImage("Could not read that photo.")
            }
            return data
        case .camera(let photo):
            // UIImagePickerController hands over a UIImage; its JPEG keeps the orientation. Encoded off the main thread.
            let box = UncheckedSendable(value: photo)
            guard let data = await Task.detached(priority: .userInitiated, operation: {
                box.value.jpegData(compressionQuality: 0.95)
            }).value else {
                throw DemoError.unreadableImage("Could not encode the camera photo.")
            }
            return data
        }
    }

    // MARK: - Self-test

    /// Runs the bundle's self-test with a model loaded for `computeUnits`, then writes the device report to a
    /// file the share sheet can send.
    func runSelfTest(computeUnits: MLComputeUnits) async {
        if case .running = selfTest { return }
        selfTest = .running
        let device = DeviceInfo.current(computeUnits: computeUnits)
        var file: SelfTestFile?
        let report: DeviceReport
        do {
            let bundled = try BundledModel.load(from: .main)
            guard let url = bundled.selfTestURL else {
                selfTest = .unavailable("This bundle has no selftest.json. Re-bundle the model with "
                    + "sdeploy bundle --app ios, which writes one.")
                return
            }
            let selfTestFile = try await Task.detached(priority: .userInitiated) {
                try SelfTestFile.decode(Data(contentsOf: url))
            }.value
            file = selfTestFile
            // A model of its own: the self-test can use other compute units than the app's classifier.
            let classifier = try await Task.detached(priority: .userInitiated) {
                try Classifier(bundled, computeUnits: computeUnits)
            }.value
            report = await SelfTestRunner.run(selfTestFile, classifier: classifier, device: device)
        } catch {
            report = SelfTestRunner.errorReport(error, file: file, device: device)
        }
        if Task.isCancelled {  // the sheet was closed: no report
            selfTest = .idle
            return
        }
        var reportURL: URL?
        do {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent(report.fileName)
            try report.json().write(to: url, options: .atomic)
            reportURL = url
        } catch {
            reportURL = nil
        }
        selfTest = .finished(report, reportURL)
    }
}

/// Where the self-test is.
enum SelfTestState {
    case idle
    case running
    case unavailable(String)
    /// The report, and its JSON file for the share sheet (nil if it could not be written).
    case finished(DeviceReport, URL?)
}

/// For values that are safe to share but not marked Sendable by their framework (UIImage is immutable).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}

extension DeviceInfo {
    /// This device, its OS and the compute units the self-test's model was loaded with.
    @MainActor
    static func current(computeUnits: MLComputeUnits) -> DeviceInfo {
        var system = utsname()
        uname(&system)
        let machine = withUnsafeBytes(of: &system.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let model = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"].map { "\($0) Simulator" } ?? machine
        let os = "\(UIDevice.current.systemName) \(UIDevice.current.systemVersion)"
        return DeviceInfo(device: "\(model) / \(os)", runtime: "Core ML (\(os))",
                          accelerator: "computeUnits=\(computeUnits.name)")
    }
}
