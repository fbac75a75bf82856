import PhotosUI
import SwiftUI

/// The screen's state: the picture shown, its top-5 classes and how long inference took.
@MainActor
final class DemoViewModel: ObservableObject {
    @Published var image: UIImage? = UIImage(named: "Sample")
    @Published var predictions: [Prediction] = []
    @Published var milliseconds: Double?
    @Published var message: String? = "Loading the model…"
    @Published var modelSummary: String?
    @Published var isRunning = false

    private var classifier: Classifier?

    /// Loads the model off the main thread, then classifies the bundled sample.
    func start() async {
        guard classifier == nil else { return }
        do {
            let loaded = try await Task.detached(priority: .userInitiated) { try Classifier() }.value
            classifier = loaded
            let config = loaded.config
            modelSummary = "\(config.arch) · \(config.precision) · \(config.weights.kind) weights · "
                + "\(config.preprocess.imgSize)×\(config.preprocess.imgSize) centre crop of "
                + "\(Int((config.cropRatio * 100).rounded())) % of the short side"
            message = nil
            if let image { await classify(image) }
        } catch {
            message = error.localizedDescription
        }
    }

    func show(_ picked: UIImage) async {
        image = picked
        predictions = []
        milliseconds = nil
        await classify(picked)
    }

    func load(_ item: PhotosPickerItem?) async {
        guard let item else { return }
        do {
            // Data keeps the EXIF orientation; UIImage(data:) turns it into imageOrientation.
            guard let data = try await item.loadTransferable(type: Data.self), let picked = UIImage(data: data) else {
                message = "Could not read that photo."
                return
            }
            await show(picked)
        } catch {
            message = "Could not load that photo: \(error.localizedDescription)"
        }
    }

    private func classify(_ picture: UIImage) async {
        guard let classifier else { return }
        isRunning = true
        defer { isRunning = false }
        do {
            let result = try await classifier.classify(picture, top: 5)
            predictions = result.predictions
            milliseconds = result.milliseconds
            message = nil
        } catch {
            message = error.localizedDescription
        }
    }
}

struct ContentView: View {
    @StateObject private var model = DemoViewModel()
    @State private var pickerItem: PhotosPickerItem?
    @State private var showingCamera = false

    var body: some View {
        NavigationStack {
            ScrollView {
                VStack(alignment: .leading, spacing: 16) {
                    picture
                    buttons
                    if let message = model.message {
                        Text(message)
                            .font(.callout.monospaced())
                            .foregroundStyle(.secondary)
                            .textSelection(.enabled)
                    }
                    results
                    if let summary = model.modelSummary {
                        Text(summary).font(.footnote).foregroundStyle(.secondary)
                    }
                }
                .padding()
            }
            .navigationTitle("ShuffleNet")
        }
        .task { await model.start() }
        .onChange(of: pickerItem) { item in
            Task { await model.load(item) }
        }
        .fullScreenCover(isPresented: $showingCamera) {
            CameraPicker { photo in
                showingCamera = false
                if let photo {
                    Task { await model.show(photo) }
                }
            }
            .ignoresSafeArea()
        }
    }

    @ViewBuilder private var picture: some View {
        if let image = model.image {
            Image(uiImage: image)
                .resizable()
                .scaledToFit()
                .frame(maxWidth: .infinity, maxHeight: 360)
                .clipShape(RoundedRectangle(cornerRadius: 12))
        }
    }

    private var buttons: some View {
        HStack {
            PhotosPicker(selection: $pickerItem, matching: .images) {
                Label("Pick photo", systemImage: "photo.on.rectangle")
            }
            .buttonStyle(.borderedProminent)
            if CameraPicker.isAvailable {
                Button {
                    showingCamera = true
                } label: {
                    Label("Camera", systemImage: "camera")
                }
                .buttonStyle(.bordered)
            }
            Spacer()
            if model.isRunning { ProgressView() }
        }
    }

    @ViewBuilder private var results: some View {
        if !model.predictions.isEmpty {
            VStack(alignment: .leading, spacing: 10) {
                ForEach(model.predictions) { prediction in
                    VStack(alignment: .leading, spacing: 4) {
                        HStack {
                            Text(prediction.label).lineLimit(1)
                            Spacer()
                            Text(String(format: "%.1f %%", prediction.probability * 100)).monospacedDigit()
                        }
                        ProgressView(value: Double(prediction.probability))
                    }
                }
                if let ms = model.milliseconds {
                    Text(String(format: "Inference: %.1f ms", ms))
                        .font(.headline)
                        .monospacedDigit()
                }
            }
        }
    }
}

struct ContentView_Previews: PreviewProvider {
    static var previews: some View { ContentView() }
}
