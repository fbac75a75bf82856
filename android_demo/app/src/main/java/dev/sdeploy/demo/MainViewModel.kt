package dev.sdeploy.demo

import android.app.Application
import android.graphics.Bitmap
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.sdeploy.demo.core.TopK
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext
import java.io.File
import java.util.Locale

/** Everything the screen shows. A failed classification clears the previous image and result. */
data class UiState(
    val busy: Boolean = false,
    val image: Bitmap? = null,
    val text: String = "",
    val report: File? = null
)

/**
 * Loads the model once (it survives rotations with this ViewModel) and runs decoding,
 * preprocessing, inference and the self-test on Dispatchers.Default, one job at a time.
 * Every failure, including Errors from native runtimes (UnsatisfiedLinkError,
 * ExceptionInInitializerError, OutOfMemoryError), ends up as text on the screen.
 */
class MainViewModel(application: Application) : AndroidViewModel(application) {
    private val _state = MutableStateFlow(UiState())
    val state: StateFlow<UiState> = _state.asStateFlow()

    private val engineLock = Mutex()
    // Touched only while holding engineLock, on Dispatchers.Default.
    private var model: BundledModel? = null
    private var classifier: Classifier? = null
    private var loadError: String? = null

    init {
        classify(ImageSource.Asset(SAMPLE))
    }

    fun classify(source: ImageSource) = launchJob { classifyNow(source) }

    fun runSelfTest() = launchJob { selfTestNow() }

    private fun launchJob(job: () -> UiState) {
        if (_state.value.busy) return
        _state.update { it.copy(busy = true) }
        viewModelScope.launch {
            val next = try {
                withContext(Dispatchers.Default) { engineLock.withLock { job() } }
            } catch (e: CancellationException) {
                throw e
            } catch (e: Throwable) {
                UiState(text = Failures.describe(e))
            }
            // A new self-test report replaces the old one; a classification keeps it shareable.
            _state.value = next.copy(busy = false, report = next.report ?: _state.value.report)
        }
    }

    /** The model and engine, loaded on first use. A load failure is remembered: a native library that failed once stays failed. */
    private fun ensureLoaded(): Classifier? {
        classifier?.let { return it }
        if (loadError != null) return null
        val app = getApplication<Application>()
        try {
            val bundled = model ?: BundledModel.load(app).also { model = it }
            classifier = Classifier.open(bundled)
        } catch (e: CancellationException) {
            throw e
        } catch (e: Throwable) {
            loadError = "Could not load the model: " + Failures.describe(e)
        }
        return classifier
    }

    private fun classifyNow(source: ImageSource): UiState {
        val classifier = ensureLoaded() ?: return UiState(text = loadError ?: "no model")
        return try {
            describe(source, classifier)
        } catch (e: OutOfMemoryError) {
            UiState(text = "${source.title}: not enough memory to decode this image")
        } catch (e: CancellationException) {
            throw e
        } catch (e: Throwable) {
            UiState(text = "${source.title}: ${Failures.describe(e)}")
        }
    }

    private fun describe(source: ImageSource, classifier: Classifier): UiState {
        val info = classifier.info
        val decoded = ImageDecoding.decode(getApplication(), source, info.preprocess.resizeSize)
        val result = classifier.classify(decoded.image)
        val image = decoded.image
        val size = info.preprocess.imgSize
        val text = StringBuilder()
            .append(String.format(Locale.US, "%s · %s · %s input %dx%d\n", info.arch, info.format, info.input.kind, size, size))
            .append(String.format(Locale.US, "%s · %dx%d", source.title, decoded.fileWidth, decoded.fileHeight))
            .append(if (decoded.sampleSize > 1) " (decoded at 1/${decoded.sampleSize}: ${image.width}x${image.height})" else "")
            .append("\n\n")
            .append(TopK.format(result.predictions))
            .append(String.format(Locale.US, "\n\ninference %.1f ms (preprocessing %.1f ms)", result.inferenceMs, result.preprocessMs))
            .toString()
        return UiState(image = ImageDecoding.displayBitmap(image), text = text)
    }

    private fun selfTestNow(): UiState {
        val classifier = ensureLoaded()
        val bundled = model ?: return UiState(text = loadError ?: "no model")
        val outcome = SelfTestRunner.run(getApplication(), bundled, classifier, loadError)
        return UiState(text = outcome.text, report = outcome.report)
    }

    override fun onCleared() {
        // Not in viewModelScope (cancelled by now): waits for a running inference, then closes the engine.
        CoroutineScope(Dispatchers.Default).launch {
            engineLock.withLock {
                classifier?.close()
                classifier = null
            }
        }
    }

    companion object {
        const val SAMPLE = "sample.png"
    }
}
